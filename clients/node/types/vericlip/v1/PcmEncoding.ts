// Original file: ../../proto/vericlip/v1/vericlip.proto

export const PcmEncoding = {
  PCM_ENCODING_UNSPECIFIED: 'PCM_ENCODING_UNSPECIFIED',
  PCM_ENCODING_S16LE: 'PCM_ENCODING_S16LE',
  PCM_ENCODING_F32LE: 'PCM_ENCODING_F32LE',
} as const;

export type PcmEncoding =
  | 'PCM_ENCODING_UNSPECIFIED'
  | 0
  | 'PCM_ENCODING_S16LE'
  | 1
  | 'PCM_ENCODING_F32LE'
  | 2

export type PcmEncoding__Output = typeof PcmEncoding[keyof typeof PcmEncoding]

// Original file: ../../proto/vericlip/v1/vericlip.proto

export const Verdict = {
  VERDICT_UNSPECIFIED: 'VERDICT_UNSPECIFIED',
  VERDICT_REAL: 'VERDICT_REAL',
  VERDICT_FAKE: 'VERDICT_FAKE',
  VERDICT_NO_SPEECH: 'VERDICT_NO_SPEECH',
} as const;

export type Verdict =
  | 'VERDICT_UNSPECIFIED'
  | 0
  | 'VERDICT_REAL'
  | 1
  | 'VERDICT_FAKE'
  | 2
  | 'VERDICT_NO_SPEECH'
  | 3

export type Verdict__Output = typeof Verdict[keyof typeof Verdict]

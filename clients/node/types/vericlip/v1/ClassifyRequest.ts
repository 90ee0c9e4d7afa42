// Original file: ../../proto/vericlip/v1/vericlip.proto

import type { RawPcm as _vericlip_v1_RawPcm, RawPcm__Output as _vericlip_v1_RawPcm__Output } from '../../vericlip/v1/RawPcm';
import type { Long } from '@grpc/proto-loader';

export interface ClassifyRequest {
  'encoded'?: (Buffer | Uint8Array | string);
  'pcm'?: (_vericlip_v1_RawPcm | null);
  'model'?: (string);
  'version'?: (number | string | Long);
  'audio'?: "encoded"|"pcm";
}

export interface ClassifyRequest__Output {
  'encoded'?: (Buffer);
  'pcm'?: (_vericlip_v1_RawPcm__Output | null);
  'model': (string);
  'version': (number);
  'audio'?: "encoded"|"pcm";
}

// Original file: ../../proto/vericlip/v1/vericlip.proto

import type { StreamConfig as _vericlip_v1_StreamConfig, StreamConfig__Output as _vericlip_v1_StreamConfig__Output } from '../../vericlip/v1/StreamConfig';

export interface ClassifyStreamRequest {
  'config'?: (_vericlip_v1_StreamConfig | null);
  'audio'?: (Buffer | Uint8Array | string);
  'message'?: "config"|"audio";
}

export interface ClassifyStreamRequest__Output {
  'config'?: (_vericlip_v1_StreamConfig__Output | null);
  'audio'?: (Buffer);
  'message'?: "config"|"audio";
}

// Original file: ../../proto/vericlip/v1/vericlip.proto

import type { PcmFormat as _vericlip_v1_PcmFormat, PcmFormat__Output as _vericlip_v1_PcmFormat__Output } from '../../vericlip/v1/PcmFormat';

export interface RawPcm {
  'data'?: (Buffer | Uint8Array | string);
  'format'?: (_vericlip_v1_PcmFormat | null);
}

export interface RawPcm__Output {
  'data': (Buffer);
  'format': (_vericlip_v1_PcmFormat__Output | null);
}

// Original file: ../../proto/vericlip/v1/vericlip.proto

import type { PcmEncoding as _vericlip_v1_PcmEncoding, PcmEncoding__Output as _vericlip_v1_PcmEncoding__Output } from '../../vericlip/v1/PcmEncoding';

export interface PcmFormat {
  'encoding'?: (_vericlip_v1_PcmEncoding);
  'sample_rate'?: (number);
  'channels'?: (number);
}

export interface PcmFormat__Output {
  'encoding': (_vericlip_v1_PcmEncoding__Output);
  'sample_rate': (number);
  'channels': (number);
}

// Original file: ../../proto/vericlip/v1/vericlip.proto

import type { PcmFormat as _vericlip_v1_PcmFormat, PcmFormat__Output as _vericlip_v1_PcmFormat__Output } from '../../vericlip/v1/PcmFormat';
import type { Long } from '@grpc/proto-loader';

export interface StreamConfig {
  'pcm'?: (_vericlip_v1_PcmFormat | null);
  'encoded'?: (boolean);
  'step_seconds'?: (number | string);
  'model'?: (string);
  'version'?: (number | string | Long);
  'format'?: "pcm"|"encoded";
}

export interface StreamConfig__Output {
  'pcm'?: (_vericlip_v1_PcmFormat__Output | null);
  'encoded'?: (boolean);
  'step_seconds': (number);
  'model': (string);
  'version': (number);
  'format'?: "pcm"|"encoded";
}

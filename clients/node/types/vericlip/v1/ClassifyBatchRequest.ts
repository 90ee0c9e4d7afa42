// Original file: ../../proto/vericlip/v1/vericlip.proto

import type { ClassifyRequest as _vericlip_v1_ClassifyRequest, ClassifyRequest__Output as _vericlip_v1_ClassifyRequest__Output } from '../../vericlip/v1/ClassifyRequest';

export interface ClassifyBatchRequest {
  'clips'?: (_vericlip_v1_ClassifyRequest)[];
}

export interface ClassifyBatchRequest__Output {
  'clips': (_vericlip_v1_ClassifyRequest__Output)[];
}

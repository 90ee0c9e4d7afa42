// Original file: ../../proto/vericlip/v1/vericlip.proto

import type { ClassifyBatchResult as _vericlip_v1_ClassifyBatchResult, ClassifyBatchResult__Output as _vericlip_v1_ClassifyBatchResult__Output } from '../../vericlip/v1/ClassifyBatchResult';

export interface ClassifyBatchResponse {
  'results'?: (_vericlip_v1_ClassifyBatchResult)[];
  'request_id'?: (string);
}

export interface ClassifyBatchResponse__Output {
  'results': (_vericlip_v1_ClassifyBatchResult__Output)[];
  'request_id': (string);
}

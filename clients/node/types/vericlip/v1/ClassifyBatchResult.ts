// Original file: ../../proto/vericlip/v1/vericlip.proto

import type { ClassifyResponse as _vericlip_v1_ClassifyResponse, ClassifyResponse__Output as _vericlip_v1_ClassifyResponse__Output } from '../../vericlip/v1/ClassifyResponse';
import type { ClipError as _vericlip_v1_ClipError, ClipError__Output as _vericlip_v1_ClipError__Output } from '../../vericlip/v1/ClipError';

export interface ClassifyBatchResult {
  'response'?: (_vericlip_v1_ClassifyResponse | null);
  'error'?: (_vericlip_v1_ClipError | null);
  'result'?: "response"|"error";
}

export interface ClassifyBatchResult__Output {
  'response'?: (_vericlip_v1_ClassifyResponse__Output | null);
  'error'?: (_vericlip_v1_ClipError__Output | null);
  'result'?: "response"|"error";
}

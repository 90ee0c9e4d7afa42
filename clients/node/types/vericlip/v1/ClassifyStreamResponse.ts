// Original file: ../../proto/vericlip/v1/vericlip.proto

import type { SegmentScore as _vericlip_v1_SegmentScore, SegmentScore__Output as _vericlip_v1_SegmentScore__Output } from '../../vericlip/v1/SegmentScore';
import type { ClassifyResponse as _vericlip_v1_ClassifyResponse, ClassifyResponse__Output as _vericlip_v1_ClassifyResponse__Output } from '../../vericlip/v1/ClassifyResponse';

export interface ClassifyStreamResponse {
  'segment'?: (_vericlip_v1_SegmentScore | null);
  'summary'?: (_vericlip_v1_ClassifyResponse | null);
  'message'?: "segment"|"summary";
}

export interface ClassifyStreamResponse__Output {
  'segment'?: (_vericlip_v1_SegmentScore__Output | null);
  'summary'?: (_vericlip_v1_ClassifyResponse__Output | null);
  'message'?: "segment"|"summary";
}

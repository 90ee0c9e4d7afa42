// Original file: ../../proto/vericlip/v1/vericlip.proto

import type { Verdict as _vericlip_v1_Verdict, Verdict__Output as _vericlip_v1_Verdict__Output } from '../../vericlip/v1/Verdict';
import type { SegmentScore as _vericlip_v1_SegmentScore, SegmentScore__Output as _vericlip_v1_SegmentScore__Output } from '../../vericlip/v1/SegmentScore';
import type { StageTimings as _vericlip_v1_StageTimings, StageTimings__Output as _vericlip_v1_StageTimings__Output } from '../../vericlip/v1/StageTimings';
import type { Long } from '@grpc/proto-loader';

export interface ClassifyResponse {
  'verdict'?: (_vericlip_v1_Verdict);
  'fake_score'?: (number | string);
  'threshold'?: (number | string);
  'segments'?: (_vericlip_v1_SegmentScore)[];
  'model'?: (string);
  'model_version'?: (number | string | Long);
  'duration_seconds'?: (number | string);
  'timings'?: (_vericlip_v1_StageTimings | null);
  'request_id'?: (string);
}

export interface ClassifyResponse__Output {
  'verdict': (_vericlip_v1_Verdict__Output);
  'fake_score': (number);
  'threshold': (number);
  'segments': (_vericlip_v1_SegmentScore__Output)[];
  'model': (string);
  'model_version': (number);
  'duration_seconds': (number);
  'timings': (_vericlip_v1_StageTimings__Output | null);
  'request_id': (string);
}

// Original file: ../../proto/vericlip/v1/vericlip.proto

import type { Verdict as _vericlip_v1_Verdict, Verdict__Output as _vericlip_v1_Verdict__Output } from '../../vericlip/v1/Verdict';

export interface SegmentScore {
  'index'?: (number);
  'start_seconds'?: (number | string);
  'end_seconds'?: (number | string);
  'fake_score'?: (number | string);
  'verdict'?: (_vericlip_v1_Verdict);
}

export interface SegmentScore__Output {
  'index': (number);
  'start_seconds': (number);
  'end_seconds': (number);
  'fake_score': (number);
  'verdict': (_vericlip_v1_Verdict__Output);
}

// Original file: ../../proto/vericlip/v1/vericlip.proto


export interface StageTimings {
  'decode_ms'?: (number | string);
  'features_ms'?: (number | string);
  'queue_ms'?: (number | string);
  'inference_ms'?: (number | string);
  'total_ms'?: (number | string);
}

export interface StageTimings__Output {
  'decode_ms': (number);
  'features_ms': (number);
  'queue_ms': (number);
  'inference_ms': (number);
  'total_ms': (number);
}

// Original file: ../../proto/vericlip/v1/vericlip.proto

import type { Long } from '@grpc/proto-loader';

export interface ModelInfo {
  'name'?: (string);
  'version'?: (number | string | Long);
  'serving'?: (boolean);
  'created_at'?: (string);
  'sha256'?: (string);
  'threshold'?: (number | string);
  'execution_provider'?: (string);
  'sample_rate'?: (number);
  'segment_seconds'?: (number | string);
  'frames'?: (number);
  'features'?: (number);
  'test_metrics'?: ({[key: string]: number | string});
  'manifest_json'?: (string);
  'manifest_bytes'?: (number | string | Long);
  'validation_metrics'?: ({[key: string]: number | string});
  'canary'?: (boolean);
  'traffic_fraction'?: (number | string);
}

export interface ModelInfo__Output {
  'name': (string);
  'version': (number);
  'serving': (boolean);
  'created_at': (string);
  'sha256': (string);
  'threshold': (number);
  'execution_provider': (string);
  'sample_rate': (number);
  'segment_seconds': (number);
  'frames': (number);
  'features': (number);
  'test_metrics': ({[key: string]: number});
  'manifest_json': (string);
  'manifest_bytes': (number);
  'validation_metrics': ({[key: string]: number});
  'canary': (boolean);
  'traffic_fraction': (number);
}

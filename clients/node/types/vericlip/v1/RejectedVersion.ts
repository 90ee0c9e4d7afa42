// Original file: ../../proto/vericlip/v1/vericlip.proto

import type { Long } from '@grpc/proto-loader';

export interface RejectedVersion {
  'name'?: (string);
  'version'?: (number | string | Long);
  'reason'?: (string);
}

export interface RejectedVersion__Output {
  'name': (string);
  'version': (number);
  'reason': (string);
}

// Original file: ../../proto/vericlip/v1/vericlip.proto

import type { Long } from '@grpc/proto-loader';

export interface GetModelRequest {
  'name'?: (string);
  'version'?: (number | string | Long);
}

export interface GetModelRequest__Output {
  'name': (string);
  'version': (number);
}

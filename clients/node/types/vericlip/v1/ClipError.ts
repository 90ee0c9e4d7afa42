// Original file: ../../proto/vericlip/v1/vericlip.proto


export interface ClipError {
  'name'?: (string);
  'code'?: (string);
  'message'?: (string);
}

export interface ClipError__Output {
  'name': (string);
  'code': (string);
  'message': (string);
}

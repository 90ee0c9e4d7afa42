// Original file: ../../proto/vericlip/v1/vericlip.proto


export interface ListModelsRequest {
  'include_manifest'?: (boolean);
}

export interface ListModelsRequest__Output {
  'include_manifest': (boolean);
}

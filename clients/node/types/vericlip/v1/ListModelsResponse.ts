// Original file: ../../proto/vericlip/v1/vericlip.proto

import type { ModelInfo as _vericlip_v1_ModelInfo, ModelInfo__Output as _vericlip_v1_ModelInfo__Output } from '../../vericlip/v1/ModelInfo';
import type { RejectedVersion as _vericlip_v1_RejectedVersion, RejectedVersion__Output as _vericlip_v1_RejectedVersion__Output } from '../../vericlip/v1/RejectedVersion';

export interface ListModelsResponse {
  'models'?: (_vericlip_v1_ModelInfo)[];
  'rejected'?: (_vericlip_v1_RejectedVersion)[];
  'manifests_omitted'?: (number);
}

export interface ListModelsResponse__Output {
  'models': (_vericlip_v1_ModelInfo__Output)[];
  'rejected': (_vericlip_v1_RejectedVersion__Output)[];
  'manifests_omitted': (number);
}

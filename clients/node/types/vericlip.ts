import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { ClassifyBatchRequest as _vericlip_v1_ClassifyBatchRequest, ClassifyBatchRequest__Output as _vericlip_v1_ClassifyBatchRequest__Output } from './vericlip/v1/ClassifyBatchRequest';
import type { ClassifyBatchResponse as _vericlip_v1_ClassifyBatchResponse, ClassifyBatchResponse__Output as _vericlip_v1_ClassifyBatchResponse__Output } from './vericlip/v1/ClassifyBatchResponse';
import type { ClassifyBatchResult as _vericlip_v1_ClassifyBatchResult, ClassifyBatchResult__Output as _vericlip_v1_ClassifyBatchResult__Output } from './vericlip/v1/ClassifyBatchResult';
import type { ClassifyRequest as _vericlip_v1_ClassifyRequest, ClassifyRequest__Output as _vericlip_v1_ClassifyRequest__Output } from './vericlip/v1/ClassifyRequest';
import type { ClassifyResponse as _vericlip_v1_ClassifyResponse, ClassifyResponse__Output as _vericlip_v1_ClassifyResponse__Output } from './vericlip/v1/ClassifyResponse';
import type { ClassifyStreamRequest as _vericlip_v1_ClassifyStreamRequest, ClassifyStreamRequest__Output as _vericlip_v1_ClassifyStreamRequest__Output } from './vericlip/v1/ClassifyStreamRequest';
import type { ClassifyStreamResponse as _vericlip_v1_ClassifyStreamResponse, ClassifyStreamResponse__Output as _vericlip_v1_ClassifyStreamResponse__Output } from './vericlip/v1/ClassifyStreamResponse';
import type { ClipError as _vericlip_v1_ClipError, ClipError__Output as _vericlip_v1_ClipError__Output } from './vericlip/v1/ClipError';
import type { GetModelRequest as _vericlip_v1_GetModelRequest, GetModelRequest__Output as _vericlip_v1_GetModelRequest__Output } from './vericlip/v1/GetModelRequest';
import type { ListModelsRequest as _vericlip_v1_ListModelsRequest, ListModelsRequest__Output as _vericlip_v1_ListModelsRequest__Output } from './vericlip/v1/ListModelsRequest';
import type { ListModelsResponse as _vericlip_v1_ListModelsResponse, ListModelsResponse__Output as _vericlip_v1_ListModelsResponse__Output } from './vericlip/v1/ListModelsResponse';
import type { ModelInfo as _vericlip_v1_ModelInfo, ModelInfo__Output as _vericlip_v1_ModelInfo__Output } from './vericlip/v1/ModelInfo';
import type { PcmFormat as _vericlip_v1_PcmFormat, PcmFormat__Output as _vericlip_v1_PcmFormat__Output } from './vericlip/v1/PcmFormat';
import type { RawPcm as _vericlip_v1_RawPcm, RawPcm__Output as _vericlip_v1_RawPcm__Output } from './vericlip/v1/RawPcm';
import type { RejectedVersion as _vericlip_v1_RejectedVersion, RejectedVersion__Output as _vericlip_v1_RejectedVersion__Output } from './vericlip/v1/RejectedVersion';
import type { SegmentScore as _vericlip_v1_SegmentScore, SegmentScore__Output as _vericlip_v1_SegmentScore__Output } from './vericlip/v1/SegmentScore';
import type { StageTimings as _vericlip_v1_StageTimings, StageTimings__Output as _vericlip_v1_StageTimings__Output } from './vericlip/v1/StageTimings';
import type { StreamConfig as _vericlip_v1_StreamConfig, StreamConfig__Output as _vericlip_v1_StreamConfig__Output } from './vericlip/v1/StreamConfig';
import type { VericlipClient as _vericlip_v1_VericlipClient, VericlipDefinition as _vericlip_v1_VericlipDefinition } from './vericlip/v1/Vericlip';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  vericlip: {
    v1: {
      ClassifyBatchRequest: MessageTypeDefinition<_vericlip_v1_ClassifyBatchRequest, _vericlip_v1_ClassifyBatchRequest__Output>
      ClassifyBatchResponse: MessageTypeDefinition<_vericlip_v1_ClassifyBatchResponse, _vericlip_v1_ClassifyBatchResponse__Output>
      ClassifyBatchResult: MessageTypeDefinition<_vericlip_v1_ClassifyBatchResult, _vericlip_v1_ClassifyBatchResult__Output>
      ClassifyRequest: MessageTypeDefinition<_vericlip_v1_ClassifyRequest, _vericlip_v1_ClassifyRequest__Output>
      ClassifyResponse: MessageTypeDefinition<_vericlip_v1_ClassifyResponse, _vericlip_v1_ClassifyResponse__Output>
      ClassifyStreamRequest: MessageTypeDefinition<_vericlip_v1_ClassifyStreamRequest, _vericlip_v1_ClassifyStreamRequest__Output>
      ClassifyStreamResponse: MessageTypeDefinition<_vericlip_v1_ClassifyStreamResponse, _vericlip_v1_ClassifyStreamResponse__Output>
      ClipError: MessageTypeDefinition<_vericlip_v1_ClipError, _vericlip_v1_ClipError__Output>
      GetModelRequest: MessageTypeDefinition<_vericlip_v1_GetModelRequest, _vericlip_v1_GetModelRequest__Output>
      ListModelsRequest: MessageTypeDefinition<_vericlip_v1_ListModelsRequest, _vericlip_v1_ListModelsRequest__Output>
      ListModelsResponse: MessageTypeDefinition<_vericlip_v1_ListModelsResponse, _vericlip_v1_ListModelsResponse__Output>
      ModelInfo: MessageTypeDefinition<_vericlip_v1_ModelInfo, _vericlip_v1_ModelInfo__Output>
      PcmEncoding: EnumTypeDefinition
      PcmFormat: MessageTypeDefinition<_vericlip_v1_PcmFormat, _vericlip_v1_PcmFormat__Output>
      RawPcm: MessageTypeDefinition<_vericlip_v1_RawPcm, _vericlip_v1_RawPcm__Output>
      RejectedVersion: MessageTypeDefinition<_vericlip_v1_RejectedVersion, _vericlip_v1_RejectedVersion__Output>
      SegmentScore: MessageTypeDefinition<_vericlip_v1_SegmentScore, _vericlip_v1_SegmentScore__Output>
      StageTimings: MessageTypeDefinition<_vericlip_v1_StageTimings, _vericlip_v1_StageTimings__Output>
      StreamConfig: MessageTypeDefinition<_vericlip_v1_StreamConfig, _vericlip_v1_StreamConfig__Output>
      Verdict: EnumTypeDefinition
      Vericlip: SubtypeConstructor<typeof grpc.Client, _vericlip_v1_VericlipClient> & { service: _vericlip_v1_VericlipDefinition }
    }
  }
}


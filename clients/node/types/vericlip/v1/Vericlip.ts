// Original file: ../../proto/vericlip/v1/vericlip.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { ClassifyBatchRequest as _vericlip_v1_ClassifyBatchRequest, ClassifyBatchRequest__Output as _vericlip_v1_ClassifyBatchRequest__Output } from '../../vericlip/v1/ClassifyBatchRequest';
import type { ClassifyBatchResponse as _vericlip_v1_ClassifyBatchResponse, ClassifyBatchResponse__Output as _vericlip_v1_ClassifyBatchResponse__Output } from '../../vericlip/v1/ClassifyBatchResponse';
import type { ClassifyRequest as _vericlip_v1_ClassifyRequest, ClassifyRequest__Output as _vericlip_v1_ClassifyRequest__Output } from '../../vericlip/v1/ClassifyRequest';
import type { ClassifyResponse as _vericlip_v1_ClassifyResponse, ClassifyResponse__Output as _vericlip_v1_ClassifyResponse__Output } from '../../vericlip/v1/ClassifyResponse';
import type { ClassifyStreamRequest as _vericlip_v1_ClassifyStreamRequest, ClassifyStreamRequest__Output as _vericlip_v1_ClassifyStreamRequest__Output } from '../../vericlip/v1/ClassifyStreamRequest';
import type { ClassifyStreamResponse as _vericlip_v1_ClassifyStreamResponse, ClassifyStreamResponse__Output as _vericlip_v1_ClassifyStreamResponse__Output } from '../../vericlip/v1/ClassifyStreamResponse';
import type { GetModelRequest as _vericlip_v1_GetModelRequest, GetModelRequest__Output as _vericlip_v1_GetModelRequest__Output } from '../../vericlip/v1/GetModelRequest';
import type { ListModelsRequest as _vericlip_v1_ListModelsRequest, ListModelsRequest__Output as _vericlip_v1_ListModelsRequest__Output } from '../../vericlip/v1/ListModelsRequest';
import type { ListModelsResponse as _vericlip_v1_ListModelsResponse, ListModelsResponse__Output as _vericlip_v1_ListModelsResponse__Output } from '../../vericlip/v1/ListModelsResponse';
import type { ModelInfo as _vericlip_v1_ModelInfo, ModelInfo__Output as _vericlip_v1_ModelInfo__Output } from '../../vericlip/v1/ModelInfo';

export interface VericlipClient extends grpc.Client {
  Classify(argument: _vericlip_v1_ClassifyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_vericlip_v1_ClassifyResponse__Output>): grpc.ClientUnaryCall;
  Classify(argument: _vericlip_v1_ClassifyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_vericlip_v1_ClassifyResponse__Output>): grpc.ClientUnaryCall;
  Classify(argument: _vericlip_v1_ClassifyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_vericlip_v1_ClassifyResponse__Output>): grpc.ClientUnaryCall;
  Classify(argument: _vericlip_v1_ClassifyRequest, callback: grpc.requestCallback<_vericlip_v1_ClassifyResponse__Output>): grpc.ClientUnaryCall;
  classify(argument: _vericlip_v1_ClassifyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_vericlip_v1_ClassifyResponse__Output>): grpc.ClientUnaryCall;
  classify(argument: _vericlip_v1_ClassifyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_vericlip_v1_ClassifyResponse__Output>): grpc.ClientUnaryCall;
  classify(argument: _vericlip_v1_ClassifyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_vericlip_v1_ClassifyResponse__Output>): grpc.ClientUnaryCall;
  classify(argument: _vericlip_v1_ClassifyRequest, callback: grpc.requestCallback<_vericlip_v1_ClassifyResponse__Output>): grpc.ClientUnaryCall;
  
  ClassifyBatch(argument: _vericlip_v1_ClassifyBatchRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_vericlip_v1_ClassifyBatchResponse__Output>): grpc.ClientUnaryCall;
  ClassifyBatch(argument: _vericlip_v1_ClassifyBatchRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_vericlip_v1_ClassifyBatchResponse__Output>): grpc.ClientUnaryCall;
  ClassifyBatch(argument: _vericlip_v1_ClassifyBatchRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_vericlip_v1_ClassifyBatchResponse__Output>): grpc.ClientUnaryCall;
  ClassifyBatch(argument: _vericlip_v1_ClassifyBatchRequest, callback: grpc.requestCallback<_vericlip_v1_ClassifyBatchResponse__Output>): grpc.ClientUnaryCall;
  classifyBatch(argument: _vericlip_v1_ClassifyBatchRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_vericlip_v1_ClassifyBatchResponse__Output>): grpc.ClientUnaryCall;
  classifyBatch(argument: _vericlip_v1_ClassifyBatchRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_vericlip_v1_ClassifyBatchResponse__Output>): grpc.ClientUnaryCall;
  classifyBatch(argument: _vericlip_v1_ClassifyBatchRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_vericlip_v1_ClassifyBatchResponse__Output>): grpc.ClientUnaryCall;
  classifyBatch(argument: _vericlip_v1_ClassifyBatchRequest, callback: grpc.requestCallback<_vericlip_v1_ClassifyBatchResponse__Output>): grpc.ClientUnaryCall;
  
  ClassifyStream(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_vericlip_v1_ClassifyStreamRequest, _vericlip_v1_ClassifyStreamResponse__Output>;
  ClassifyStream(options?: grpc.CallOptions): grpc.ClientDuplexStream<_vericlip_v1_ClassifyStreamRequest, _vericlip_v1_ClassifyStreamResponse__Output>;
  classifyStream(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_vericlip_v1_ClassifyStreamRequest, _vericlip_v1_ClassifyStreamResponse__Output>;
  classifyStream(options?: grpc.CallOptions): grpc.ClientDuplexStream<_vericlip_v1_ClassifyStreamRequest, _vericlip_v1_ClassifyStreamResponse__Output>;
  
  GetModel(argument: _vericlip_v1_GetModelRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_vericlip_v1_ModelInfo__Output>): grpc.ClientUnaryCall;
  GetModel(argument: _vericlip_v1_GetModelRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_vericlip_v1_ModelInfo__Output>): grpc.ClientUnaryCall;
  GetModel(argument: _vericlip_v1_GetModelRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_vericlip_v1_ModelInfo__Output>): grpc.ClientUnaryCall;
  GetModel(argument: _vericlip_v1_GetModelRequest, callback: grpc.requestCallback<_vericlip_v1_ModelInfo__Output>): grpc.ClientUnaryCall;
  getModel(argument: _vericlip_v1_GetModelRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_vericlip_v1_ModelInfo__Output>): grpc.ClientUnaryCall;
  getModel(argument: _vericlip_v1_GetModelRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_vericlip_v1_ModelInfo__Output>): grpc.ClientUnaryCall;
  getModel(argument: _vericlip_v1_GetModelRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_vericlip_v1_ModelInfo__Output>): grpc.ClientUnaryCall;
  getModel(argument: _vericlip_v1_GetModelRequest, callback: grpc.requestCallback<_vericlip_v1_ModelInfo__Output>): grpc.ClientUnaryCall;
  
  ListModels(argument: _vericlip_v1_ListModelsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_vericlip_v1_ListModelsResponse__Output>): grpc.ClientUnaryCall;
  ListModels(argument: _vericlip_v1_ListModelsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_vericlip_v1_ListModelsResponse__Output>): grpc.ClientUnaryCall;
  ListModels(argument: _vericlip_v1_ListModelsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_vericlip_v1_ListModelsResponse__Output>): grpc.ClientUnaryCall;
  ListModels(argument: _vericlip_v1_ListModelsRequest, callback: grpc.requestCallback<_vericlip_v1_ListModelsResponse__Output>): grpc.ClientUnaryCall;
  listModels(argument: _vericlip_v1_ListModelsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_vericlip_v1_ListModelsResponse__Output>): grpc.ClientUnaryCall;
  listModels(argument: _vericlip_v1_ListModelsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_vericlip_v1_ListModelsResponse__Output>): grpc.ClientUnaryCall;
  listModels(argument: _vericlip_v1_ListModelsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_vericlip_v1_ListModelsResponse__Output>): grpc.ClientUnaryCall;
  listModels(argument: _vericlip_v1_ListModelsRequest, callback: grpc.requestCallback<_vericlip_v1_ListModelsResponse__Output>): grpc.ClientUnaryCall;
  
}

export interface VericlipHandlers extends grpc.UntypedServiceImplementation {
  Classify: grpc.handleUnaryCall<_vericlip_v1_ClassifyRequest__Output, _vericlip_v1_ClassifyResponse>;
  
  ClassifyBatch: grpc.handleUnaryCall<_vericlip_v1_ClassifyBatchRequest__Output, _vericlip_v1_ClassifyBatchResponse>;
  
  ClassifyStream: grpc.handleBidiStreamingCall<_vericlip_v1_ClassifyStreamRequest__Output, _vericlip_v1_ClassifyStreamResponse>;
  
  GetModel: grpc.handleUnaryCall<_vericlip_v1_GetModelRequest__Output, _vericlip_v1_ModelInfo>;
  
  ListModels: grpc.handleUnaryCall<_vericlip_v1_ListModelsRequest__Output, _vericlip_v1_ListModelsResponse>;
  
}

export interface VericlipDefinition extends grpc.ServiceDefinition {
  Classify: MethodDefinition<_vericlip_v1_ClassifyRequest, _vericlip_v1_ClassifyResponse, _vericlip_v1_ClassifyRequest__Output, _vericlip_v1_ClassifyResponse__Output>
  ClassifyBatch: MethodDefinition<_vericlip_v1_ClassifyBatchRequest, _vericlip_v1_ClassifyBatchResponse, _vericlip_v1_ClassifyBatchRequest__Output, _vericlip_v1_ClassifyBatchResponse__Output>
  ClassifyStream: MethodDefinition<_vericlip_v1_ClassifyStreamRequest, _vericlip_v1_ClassifyStreamResponse, _vericlip_v1_ClassifyStreamRequest__Output, _vericlip_v1_ClassifyStreamResponse__Output>
  GetModel: MethodDefinition<_vericlip_v1_GetModelRequest, _vericlip_v1_ModelInfo, _vericlip_v1_GetModelRequest__Output, _vericlip_v1_ModelInfo__Output>
  ListModels: MethodDefinition<_vericlip_v1_ListModelsRequest, _vericlip_v1_ListModelsResponse, _vericlip_v1_ListModelsRequest__Output, _vericlip_v1_ListModelsResponse__Output>
}

// Package vericlip is a thin Go client for the Vericlip gRPC API (vericlip.v1): a connection with
// the settings docs/OPERATIONS.md recommends, the API key, and helpers that classify or stream a
// file. The generated stubs are in vericlip/v1 (regenerate with generate.sh).
package vericlip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	vericlipv1 "github.com/vericlip/vericlip/clients/go/vericlip/v1"
)

// ServiceConfig balances calls round robin over every address the target resolves to (the pods
// behind the headless Service). The retry policy of docs/API.md's service config (UNAVAILABLE,
// and RESOURCE_EXHAUSTED when the server advises a retry) is DefaultRetryPolicy, applied by Dial's
// interceptor: grpc-go 1.33 applies a service config's retryPolicy only with the process-wide
// GRPC_GO_RETRY=on, and leaving it out here means setting that too never doubles the attempts.
const ServiceConfig = `{"loadBalancingConfig": [{"round_robin": {}}]}`

// InClusterTarget is the headless Service's DNS name (k8s/): the dns resolver returns every
// ready pod's IP, so round robin spreads calls over them.
const InClusterTarget = "dns:///vericlip-server-headless.vericlip.svc.cluster.local:50051"

// MaxMessageBytes lets a long clip through (the server's own limit, grpc.max_message_mb, is what
// really bounds it).
const MaxMessageBytes = 64 << 20

// Options for Dial.
type Options struct {
	// APIKey, when the server has [auth] api_key_file set: sent as `authorization: Bearer KEY`.
	APIKey string
	// TLS is nil for plaintext (inside a cluster or on loopback).
	TLS credentials.TransportCredentials
	// Retry replaces DefaultRetryPolicy for unary calls (MaxAttempts 1: no retries).
	Retry *RetryPolicy
}

// Dial opens a client connection (lazily: the first call connects). Unary calls through it are
// retried by the retry policy and fail with an *Error (errors.As); so do StreamFile's streams.
func Dial(target string, o Options) (*grpc.ClientConn, error) {
	creds := grpc.WithInsecure()
	if o.TLS != nil {
		creds = grpc.WithTransportCredentials(o.TLS)
	}
	opts := []grpc.DialOption{
		creds,
		grpc.WithDefaultServiceConfig(ServiceConfig),
		// A PING every 60 s on a connection with calls in flight finds a dead peer (a node
		// gone) in 80 s rather than at the TCP timeout.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 60 * time.Second, Timeout: 20 * time.Second}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)),
	}
	policy := DefaultRetryPolicy
	if o.Retry != nil {
		policy = *o.Retry
	}
	unary := []grpc.UnaryClientInterceptor{retryUnary(policy)}
	if o.APIKey != "" {
		unary = append(unary, func(ctx context.Context, method string, req, reply interface{}, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, callOpts ...grpc.CallOption) error {
			return invoker(withKey(ctx, o.APIKey), method, req, reply, cc, callOpts...)
		})
		opts = append(opts, grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, callOpts ...grpc.CallOption) (grpc.ClientStream, error) {
			return streamer(withKey(ctx, o.APIKey), desc, cc, method, callOpts...)
		}))
	}
	opts = append(opts, grpc.WithChainUnaryInterceptor(unary...))
	return grpc.Dial(target, opts...)
}

func withKey(ctx context.Context, key string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
}

// ClassifyFile sends a whole audio file (WAV, FLAC, MP3, OGG Vorbis) to Classify.
func ClassifyFile(ctx context.Context, c vericlipv1.VericlipClient, path string) (*vericlipv1.ClassifyResponse, error) {
	audio, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return c.Classify(ctx, &vericlipv1.ClassifyRequest{Audio: &vericlipv1.ClassifyRequest_Encoded{Encoded: audio}})
}

// MaxBatchClips is the most clips one ClassifyBatch carries (a server with a smaller queue takes
// fewer: its batch_too_large error says how many).
const MaxBatchClips = 32

// BatchResult is one clip's answer in a batch: its Response, or Err, the *Error of that clip alone.
type BatchResult struct {
	Response *vericlipv1.ClassifyResponse
	Err      error
}

// ClassifyBatch classifies up to MaxBatchClips clips in one call and returns one BatchResult per
// clip, in order. The error is the batch's own (batch_too_large, empty_batch, queue_full after the
// retries, ...): an *Error (errors.As).
func ClassifyBatch(ctx context.Context, c vericlipv1.VericlipClient, clips []*vericlipv1.ClassifyRequest) ([]BatchResult, error) {
	r, err := c.ClassifyBatch(ctx, &vericlipv1.ClassifyBatchRequest{Clips: clips})
	if err != nil {
		return nil, err
	}
	out := make([]BatchResult, len(r.Results))
	for i, res := range r.Results {
		if e := res.GetError(); e != nil {
			out[i].Err = clipError(e, r.RequestId)
		} else {
			out[i].Response = res.GetResponse()
		}
	}
	return out, nil
}

// ClassifyFiles reads whole audio files and classifies them in one ClassifyBatch.
func ClassifyFiles(ctx context.Context, c vericlipv1.VericlipClient, paths ...string) ([]BatchResult, error) {
	clips := make([]*vericlipv1.ClassifyRequest, len(paths))
	for i, path := range paths {
		audio, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		clips[i] = &vericlipv1.ClassifyRequest{Audio: &vericlipv1.ClassifyRequest_Encoded{Encoded: audio}}
	}
	return ClassifyBatch(ctx, c, clips)
}

// StreamFile sends a file to ClassifyStream in chunks of chunkBytes (an encoded file is decoded and
// scored on half-close) and returns the segments as they came, then the summary.
func StreamFile(ctx context.Context, c vericlipv1.VericlipClient, path string, chunkBytes int) ([]*vericlipv1.SegmentScore, *vericlipv1.ClassifyResponse, error) {
	audio, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	stream, err := c.ClassifyStream(ctx)
	if err != nil {
		return nil, nil, asError(err, nil, nil)
	}
	segments, summary, err := streamAudio(stream, audio, chunkBytes)
	if err != nil {
		header, _ := stream.Header()
		return segments, summary, asError(err, header, stream.Trailer())
	}
	return segments, summary, nil
}

func streamAudio(stream vericlipv1.Vericlip_ClassifyStreamClient, audio []byte, chunkBytes int) ([]*vericlipv1.SegmentScore, *vericlipv1.ClassifyResponse, error) {
	config := &vericlipv1.StreamConfig{Format: &vericlipv1.StreamConfig_Encoded{Encoded: true}}
	if err := stream.Send(&vericlipv1.ClassifyStreamRequest{Message: &vericlipv1.ClassifyStreamRequest_Config{Config: config}}); err != nil {
		return nil, nil, recvErr(stream, err)
	}
	for start := 0; start < len(audio); start += chunkBytes {
		end := start + chunkBytes
		if end > len(audio) {
			end = len(audio)
		}
		chunk := &vericlipv1.ClassifyStreamRequest_Audio{Audio: audio[start:end]}
		if err := stream.Send(&vericlipv1.ClassifyStreamRequest{Message: chunk}); err != nil {
			return nil, nil, recvErr(stream, err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		return nil, nil, err
	}
	var segments []*vericlipv1.SegmentScore
	for {
		m, err := stream.Recv()
		if err != nil {
			return segments, nil, err
		}
		if s := m.GetSegment(); s != nil {
			segments = append(segments, s)
		} else if sum := m.GetSummary(); sum != nil {
			return segments, sum, nil
		}
	}
}

// recvErr: when Send fails with io.EOF the server ended the stream; its status says why.
func recvErr(stream vericlipv1.Vericlip_ClassifyStreamClient, err error) error {
	if errors.Is(err, io.EOF) {
		_, err = stream.Recv()
	}
	return err
}

// ErrorName is the stable error name (e.g. "undecodable_audio") the server puts in the
// `vericlip-error` trailer of a failed call; pass the trailer from grpc.Trailer.
func ErrorName(trailer metadata.MD) string {
	if v := trailer.Get("vericlip-error"); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Describe formats a failed call's status and error name for a log line.
func Describe(err error, trailer metadata.MD) string {
	s := status.Convert(err)
	return fmt.Sprintf("%s (%s): %s", s.Code(), ErrorName(trailer), s.Message())
}

// StreamPCM streams live PCM: it sends each chunk from chunks (as it is captured, any size) until
// the channel is closed, calls onSegment with each window's verdict as soon as the server has it,
// and returns the summary. format gives the encoding, rate and channels; stepSeconds 0 is the
// server's default. Errors are *Error (errors.As).
func StreamPCM(ctx context.Context, c vericlipv1.VericlipClient, format *vericlipv1.PcmFormat, stepSeconds float64,
	chunks <-chan []byte, onSegment func(*vericlipv1.SegmentScore)) (*vericlipv1.ClassifyResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the sender if the server ends the stream first
	stream, err := c.ClassifyStream(ctx)
	if err != nil {
		return nil, asError(err, nil, nil)
	}
	config := &vericlipv1.StreamConfig{Format: &vericlipv1.StreamConfig_Pcm{Pcm: format}, StepSeconds: stepSeconds}
	if err := stream.Send(&vericlipv1.ClassifyStreamRequest{Message: &vericlipv1.ClassifyStreamRequest_Config{Config: config}}); err != nil {
		return nil, typedStreamErr(stream, recvErr(stream, err))
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case chunk, ok := <-chunks:
				if !ok {
					_ = stream.CloseSend()
					return
				}
				if err := stream.Send(&vericlipv1.ClassifyStreamRequest{Message: &vericlipv1.ClassifyStreamRequest_Audio{Audio: chunk}}); err != nil {
					return // Recv below reports why
				}
			}
		}
	}()
	for {
		m, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("vericlip: the stream ended without a summary")
			}
			return nil, typedStreamErr(stream, err)
		}
		if s := m.GetSegment(); s != nil && onSegment != nil {
			onSegment(s)
		} else if sum := m.GetSummary(); sum != nil {
			return sum, nil
		}
	}
}

func typedStreamErr(stream vericlipv1.Vericlip_ClassifyStreamClient, err error) error {
	header, _ := stream.Header()
	return asError(err, header, stream.Trailer())
}

package vericlip

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	vericlipv1 "github.com/vericlip/vericlip/clients/go/vericlip/v1"
)

// Error is a failed Vericlip call as the server described it: the gRPC status, the stable error
// name (the google.rpc.ErrorInfo reason, e.g. "queue_full"), the request id to quote when
// reporting it, and the delay the server advises before a retry (RetryInfo; 0: a retry does not
// help). Calls through a connection from Dial return it; find it with errors.As. It still
// satisfies status.FromError and status.Code.
type Error struct {
	Code       codes.Code
	Name       string
	Message    string
	RequestID  string
	RetryDelay time.Duration
	status     *status.Status
}

func (e *Error) Error() string {
	return fmt.Sprintf("vericlip: %s (%s): %s [request_id %s]", e.Code, e.Name, e.Message, e.RequestID)
}

// GRPCStatus lets status.FromError and status.Code see the status.
func (e *Error) GRPCStatus() *status.Status { return e.status }

// Is matches the sentinels below by name: errors.Is(err, vericlip.ErrQueueFull).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.status == nil && t.Name == e.Name
}

// Sentinels for the names a caller most often branches on (docs/API.md lists every name).
var (
	ErrQueueFull        = &Error{Name: "queue_full"}
	ErrUnavailable      = &Error{Name: "unavailable"}
	ErrUnauthenticated  = &Error{Name: "unauthenticated"}
	ErrModelNotFound    = &Error{Name: "model_not_found"}
	ErrMessageTooLarge  = &Error{Name: "message_too_large"}
	ErrDeadlineExceeded = &Error{Name: "deadline_exceeded"}
	ErrBatchTooLarge    = &Error{Name: "batch_too_large"}
)

// clipError is one clip's error in a ClassifyBatch answer, as an *Error (no retry advice: the
// batch's own errors carry that).
func clipError(e *vericlipv1.ClipError, requestID string) *Error {
	code := codes.Unknown
	_ = code.UnmarshalJSON([]byte(strconv.Quote(e.GetCode())))
	return &Error{Code: code, Name: e.GetName(), Message: e.GetMessage(), RequestID: requestID,
		status: status.New(code, e.GetMessage())}
}

// ErrorDomain is the google.rpc.ErrorInfo domain of the server's errors.
const ErrorDomain = "vericlip"

// asError turns a failed call's error and metadata into an *Error (other errors as they are).
func asError(err error, header, trailer metadata.MD) error {
	if err == nil {
		return nil
	}
	s, ok := status.FromError(err)
	if !ok {
		return err
	}
	e := &Error{Code: s.Code(), Message: s.Message(), status: s}
	for _, d := range s.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			if d.Domain == ErrorDomain {
				e.Name = d.Reason
			}
		case *errdetails.RetryInfo:
			if d.RetryDelay != nil {
				e.RetryDelay = time.Duration(d.RetryDelay.Seconds)*time.Second + time.Duration(d.RetryDelay.Nanos)
			}
		}
	}
	if e.Name == "" {
		e.Name = first(trailer, "vericlip-error")
	}
	e.RequestID = first(trailer, "x-request-id")
	if e.RequestID == "" {
		e.RequestID = first(header, "x-request-id")
	}
	return e
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// RetryPolicy is the service config's retryPolicy (ServiceConfig's methodConfig): which codes are
// retried, how often, with what backoff.
type RetryPolicy struct {
	MaxAttempts       int
	InitialBackoff    time.Duration
	MaxBackoff        time.Duration
	BackoffMultiplier float64
	RetryableCodes    []codes.Code
}

// DefaultRetryPolicy is the policy of docs/API.md's service config: UNAVAILABLE (no model yet, a
// pod draining) and RESOURCE_EXHAUSTED when the server advises a retry (queue_full: its
// grpc-retry-pushback-ms is a delay; message_too_large's is -1, never retried).
var DefaultRetryPolicy = RetryPolicy{
	MaxAttempts:       4,
	InitialBackoff:    200 * time.Millisecond,
	MaxBackoff:        5 * time.Second,
	BackoffMultiplier: 2,
	RetryableCodes:    []codes.Code{codes.Unavailable, codes.ResourceExhausted},
}

// retryUnary applies p to unary calls as gRPC's built-in retry does (grpc-go 1.33 applies a
// service config's retryPolicy only with the process-wide GRPC_GO_RETRY=on, which a library must
// not set): exponential backoff with jitter, the server's pushback honoured (a negative one ends
// the retries), never past the call's deadline. Every error comes back as an *Error.
func retryUnary(p RetryPolicy) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply interface{}, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		backoff := p.InitialBackoff
		for attempt := 1; ; attempt++ {
			var header, trailer metadata.MD
			err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Header(&header), grpc.Trailer(&trailer))...)
			if err == nil {
				return nil
			}
			typed := asError(err, header, trailer)
			wait, retry := p.next(attempt, status.Code(err), trailer, backoff)
			if !retry {
				return typed
			}
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return typed
			case <-timer.C:
			}
			backoff = time.Duration(float64(backoff) * p.BackoffMultiplier)
			if backoff > p.MaxBackoff {
				backoff = p.MaxBackoff
			}
		}
	}
}

// next says whether attempt (1-based) is followed by another, and after how long.
func (p RetryPolicy) next(attempt int, code codes.Code, trailer metadata.MD, backoff time.Duration) (time.Duration, bool) {
	if attempt >= p.MaxAttempts {
		return 0, false
	}
	retryable := false
	for _, c := range p.RetryableCodes {
		retryable = retryable || c == code
	}
	if !retryable {
		return 0, false
	}
	if v := first(trailer, "grpc-retry-pushback-ms"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			return 0, false
		}
		return time.Duration(ms) * time.Millisecond, true
	}
	if code == codes.ResourceExhausted {
		// Without the server's word, a RESOURCE_EXHAUSTED may be a request over a limit.
		return 0, false
	}
	return time.Duration(rand.Float64() * float64(backoff)), true
}

// AsError is errors.As for *Error, for call sites that prefer one line.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

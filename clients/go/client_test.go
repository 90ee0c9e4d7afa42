package vericlip

// Runs against a real vericlip-server (tests/api/run.sh starts one with an API key and sets the
// environment below). Without a server the tests fail and say so; they never skip.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	vericlipv1 "github.com/vericlip/vericlip/clients/go/vericlip/v1"
)

func env(t *testing.T, key string) string {
	t.Helper()
	v := os.Getenv(key)
	if v == "" {
		t.Fatalf("%s is not set: run tests/api/run.sh, which starts a server and sets it", key)
	}
	return v
}

func connect(t *testing.T, apiKey string) vericlipv1.VericlipClient {
	t.Helper()
	conn, err := Dial(env(t, "VERICLIP_GRPC_ADDR"), Options{APIKey: apiKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return vericlipv1.NewVericlipClient(conn)
}

func samples(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(env(t, "VERICLIP_SAMPLES"), "*", "*.wav"))
	if err != nil || len(files) < 2 {
		t.Fatalf("no samples under %s (%v)", os.Getenv("VERICLIP_SAMPLES"), err)
	}
	sort.Strings(files)
	return files
}

// expected maps a sample's file name to the fake_score the HTTP API gave for it.
func expected(t *testing.T) map[string]float64 {
	t.Helper()
	raw, err := os.ReadFile(env(t, "VERICLIP_EXPECT"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{}
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	return want
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestListModels(t *testing.T) {
	c := connect(t, env(t, "VERICLIP_API_KEY"))
	r, err := c.ListModels(ctx(t), &vericlipv1.ListModelsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	serving := 0
	for _, m := range r.Models {
		if m.Name == "vericlip-lstm" && m.Serving {
			serving++
			if m.Threshold <= 0 || m.Threshold >= 1 || m.Sha256 == "" {
				t.Errorf("served model's manifest fields: threshold %v sha256 %q", m.Threshold, m.Sha256)
			}
		}
	}
	if serving != 1 {
		t.Fatalf("want exactly one served vericlip-lstm version, got %d in %v", serving, r.Models)
	}
}

func TestClassifySamples(t *testing.T) {
	c := connect(t, env(t, "VERICLIP_API_KEY"))
	want := expected(t)
	for _, path := range samples(t) {
		r, err := ClassifyFile(ctx(t), c, path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		name := filepath.Base(path)
		w, ok := want[name]
		if !ok {
			t.Fatalf("%s: no expected score", name)
		}
		if d := float64(r.FakeScore) - w; d > 1e-5 || d < -1e-5 {
			t.Errorf("%s: fake_score %v, the HTTP API said %v", name, r.FakeScore, w)
		}
		verdict := vericlipv1.Verdict_VERDICT_REAL
		if float64(r.FakeScore) >= r.Threshold {
			verdict = vericlipv1.Verdict_VERDICT_FAKE
		}
		if r.Verdict != verdict || r.Model != "vericlip-lstm" || r.ModelVersion < 1 || len(r.Segments) == 0 {
			t.Errorf("%s: verdict %v (score %v, threshold %v), model %s v%d, %d segments",
				name, r.Verdict, r.FakeScore, r.Threshold, r.Model, r.ModelVersion, len(r.Segments))
		}
	}
}

// A batch answers each clip in order with the score Classify gives it alone; a bad clip is its own
// *Error; a batch over the limit fails whole with batch_too_large.
func TestClassifyBatch(t *testing.T) {
	c := connect(t, env(t, "VERICLIP_API_KEY"))
	want := expected(t)
	files := samples(t)
	audio, err := os.ReadFile(files[1])
	if err != nil {
		t.Fatal(err)
	}
	clips := []*vericlipv1.ClassifyRequest{
		{Audio: &vericlipv1.ClassifyRequest_Encoded{Encoded: []byte("definitely not audio")}},
		{Audio: &vericlipv1.ClassifyRequest_Encoded{Encoded: audio}},
	}
	got, err := ClassifyBatch(ctx(t), c, clips)
	if err != nil || len(got) != 2 {
		t.Fatalf("batch: %v, %d results", err, len(got))
	}
	var e *Error
	if !errors.As(got[0].Err, &e) || e.Name != "undecodable_audio" || e.Code != codes.InvalidArgument || status.Code(e) != codes.InvalidArgument || e.RequestID == "" {
		t.Errorf("clip 0: %#v, want an undecodable_audio *Error", got[0].Err)
	}
	if r := got[1].Response; r == nil || math.Abs(float64(r.FakeScore)-want[filepath.Base(files[1])]) > 1e-5 {
		t.Errorf("clip 1: %v, want the score %v", got[1], want[filepath.Base(files[1])])
	}
	files2, err := ClassifyFiles(ctx(t), c, files...)
	if err != nil || len(files2) != len(files) {
		t.Fatalf("ClassifyFiles: %v, %d results", err, len(files2))
	}
	for i, r := range files2 {
		if r.Err != nil || math.Abs(float64(r.Response.FakeScore)-want[filepath.Base(files[i])]) > 1e-5 {
			t.Errorf("%s: %+v", files[i], r)
		}
	}
	many := make([]*vericlipv1.ClassifyRequest, MaxBatchClips+1)
	for i := range many {
		many[i] = clips[0]
	}
	if _, err := ClassifyBatch(ctx(t), c, many); !errors.Is(err, ErrBatchTooLarge) || status.Code(err) != codes.InvalidArgument {
		t.Errorf("a batch over the limit: %v, want ErrBatchTooLarge", err)
	}
}

func TestStreamFile(t *testing.T) {
	c := connect(t, env(t, "VERICLIP_API_KEY"))
	path := samples(t)[0]
	whole, err := ClassifyFile(ctx(t), c, path)
	if err != nil {
		t.Fatal(err)
	}
	segments, summary, err := StreamFile(ctx(t), c, path, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if len(segments) == 0 || len(segments) != len(summary.Segments) {
		t.Fatalf("streamed %d segments, summary lists %d", len(segments), len(summary.Segments))
	}
	for i, s := range segments {
		if int(s.Index) != i {
			t.Errorf("segment %d has index %d", i, s.Index)
		}
	}
	if summary.DurationSeconds != whole.DurationSeconds || summary.Model != whole.Model {
		t.Errorf("stream summary %v s by %s, Classify %v s by %s",
			summary.DurationSeconds, summary.Model, whole.DurationSeconds, whole.Model)
	}
}

func TestErrors(t *testing.T) {
	c := connect(t, env(t, "VERICLIP_API_KEY"))
	var trailer metadata.MD
	_, err := c.Classify(ctx(t), &vericlipv1.ClassifyRequest{
		Audio: &vericlipv1.ClassifyRequest_Encoded{Encoded: []byte("definitely not audio")},
	}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.InvalidArgument || ErrorName(trailer) != "undecodable_audio" {
		t.Errorf("garbage: %s", Describe(err, trailer))
	}

	noKey := connect(t, "")
	trailer = nil
	_, err = noKey.ListModels(ctx(t), &vericlipv1.ListModelsRequest{}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.Unauthenticated || ErrorName(trailer) != "unauthenticated" {
		t.Errorf("without the API key: %s", Describe(err, trailer))
	}
}

func TestTypedErrors(t *testing.T) {
	c := connect(t, env(t, "VERICLIP_API_KEY"))
	_, err := c.Classify(ctx(t), &vericlipv1.ClassifyRequest{
		Audio: &vericlipv1.ClassifyRequest_Encoded{Encoded: []byte("definitely not audio")},
	})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want an *Error, got %T %v", err, err)
	}
	if e.Code != codes.InvalidArgument || e.Name != "undecodable_audio" || e.RequestID == "" || e.RetryDelay != 0 {
		t.Errorf("garbage: %+v", e)
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("status.Code sees %v", status.Code(err))
	}
	_, err = c.GetModel(ctx(t), &vericlipv1.GetModelRequest{Name: "no-such-model"})
	if !errors.Is(err, ErrModelNotFound) || errors.Is(err, ErrQueueFull) {
		t.Errorf("unknown model: errors.Is(ErrModelNotFound) false for %v", err)
	}
}

// attempts reads the empty server's count of Classify calls answered UNAVAILABLE.
func attempts(t *testing.T) int {
	t.Helper()
	r, err := http.Get("http://" + env(t, "VERICLIP_EMPTY_HTTP") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	body, _ := io.ReadAll(r.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v := strings.TrimPrefix(line, `vericlip_requests_total{rpc="Classify",code="UNAVAILABLE"} `); v != line {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	return 0
}

// A server with no model answers UNAVAILABLE: Dial's retry policy tries 4 times in all, and the
// server counts each attempt.
func TestRetriesUnavailable(t *testing.T) {
	conn, err := Dial(env(t, "VERICLIP_EMPTY_GRPC_ADDR"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	before := attempts(t)
	_, err = ClassifyFile(ctx(t), vericlipv1.NewVericlipClient(conn), samples(t)[0])
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("want unavailable, got %v", err)
	}
	if e, _ := AsError(err); e.RetryDelay <= 0 {
		t.Errorf("unavailable without RetryInfo: %+v", e)
	}
	if got := attempts(t) - before; got != DefaultRetryPolicy.MaxAttempts {
		t.Errorf("the server saw %d attempts, want %d", got, DefaultRetryPolicy.MaxAttempts)
	}
}

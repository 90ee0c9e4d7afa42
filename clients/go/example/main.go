// Classifies audio files with Vericlip over gRPC and prints one verdict per file.
//
//	go run ./example -addr 127.0.0.1:50051 models/samples/real/*.wav
//	VERICLIP_API_KEY=secret go run ./example -addr dns:///vericlip-server-headless.vericlip.svc.cluster.local:50051 clip.wav
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	vericlip "github.com/vericlip/vericlip/clients/go"
	vericlipv1 "github.com/vericlip/vericlip/clients/go/vericlip/v1"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:50051", "gRPC target, e.g. "+vericlip.InClusterTarget)
	flag.Parse()
	conn, err := vericlip.Dial(*addr, vericlip.Options{APIKey: os.Getenv("VERICLIP_API_KEY")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer conn.Close()
	client := vericlipv1.NewVericlipClient(conn)
	failed := false
	for _, path := range flag.Args() {
		audio, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var trailer metadata.MD
		r, err := client.Classify(ctx, &vericlipv1.ClassifyRequest{Audio: &vericlipv1.ClassifyRequest_Encoded{Encoded: audio}}, grpc.Trailer(&trailer))
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %s\n", path, vericlip.Describe(err, trailer))
			failed = true
			continue
		}
		fmt.Printf("%s: %s fake_score=%.4f threshold=%.4f model=%s v%d\n",
			path, r.Verdict, r.FakeScore, r.Threshold, r.Model, r.ModelVersion)
	}
	if failed {
		os.Exit(1)
	}
}

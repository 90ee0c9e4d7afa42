// Live streaming: feeds a 16-bit WAV file to Vericlip in real time, 100 ms at a time (as a
// microphone would deliver it), and prints each window's verdict the moment it arrives, with the
// seconds of audio sent so far; then the summary.
//
//	go run ./live -addr 127.0.0.1:50051 ../../models/samples/fake/espeak_en__computer_voice.wav
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	vericlip "github.com/vericlip/vericlip/clients/go"
	vericlipv1 "github.com/vericlip/vericlip/clients/go/vericlip/v1"
)

// readWav returns the PCM, rate and channels of a canonical 16-bit WAV file.
func readWav(path string) ([]byte, uint32, uint32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, 0, err
	}
	var rate, channels, bits uint32
	for at := 12; at+8 <= len(b); {
		id, size := string(b[at:at+4]), int(binary.LittleEndian.Uint32(b[at+4:at+8]))
		body := b[at+8:]
		if size > len(body) {
			size = len(body)
		}
		switch {
		case id == "fmt " && size >= 16:
			channels = uint32(binary.LittleEndian.Uint16(body[2:4]))
			rate = binary.LittleEndian.Uint32(body[4:8])
			bits = uint32(binary.LittleEndian.Uint16(body[14:16]))
		case id == "data" && bits == 16:
			return body[:size], rate, channels, nil
		}
		at += 8 + size + size%2
	}
	return nil, 0, 0, errors.New(path + ": not a 16-bit PCM WAV file")
}

func main() {
	addr := flag.String("addr", "127.0.0.1:50051", "gRPC target")
	flag.Parse()
	pcm, rate, channels, err := readWav(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	conn, err := vericlip.Dial(*addr, vericlip.Options{APIKey: os.Getenv("VERICLIP_API_KEY")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer conn.Close()
	chunks := make(chan []byte)
	var sentMs atomic.Int64
	go func() { // the capture: 100 ms of audio every 100 ms
		defer close(chunks)
		step := int(rate/10) * 2 * int(channels)
		start := time.Now()
		for i := 0; i < len(pcm); i += step {
			end := i + step
			if end > len(pcm) {
				end = len(pcm)
			}
			chunks <- pcm[i:end]
			sent := time.Duration(end/(2*int(channels))) * time.Second / time.Duration(rate)
			sentMs.Store(sent.Milliseconds())
			time.Sleep(time.Until(start.Add(sent)))
		}
	}()
	format := &vericlipv1.PcmFormat{Encoding: vericlipv1.PcmEncoding_PCM_ENCODING_S16LE, SampleRate: rate, Channels: channels}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	summary, err := vericlip.StreamPCM(ctx, vericlipv1.NewVericlipClient(conn), format, 0, chunks, func(s *vericlipv1.SegmentScore) {
		fmt.Printf("after %.1f s sent: window %d %.1f-%.1f s %s %.4f\n", float64(sentMs.Load())/1000,
			s.Index, s.StartSeconds, s.EndSeconds, s.Verdict, s.FakeScore)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("summary: %s %.4f request_id=%s\n", summary.Verdict, summary.FakeScore, summary.RequestId)
}

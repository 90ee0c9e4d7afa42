module github.com/vericlip/vericlip/clients/go

go 1.19

// The versions the client is built and tested with: Debian 12's Go source packages
// (clients/setup.sh installs them; module_proxy.py serves them to the go command).
require (
	github.com/golang/protobuf v1.5.2 // indirect
	// not built into the client: grpc's and protobuf's tests import it, and `go mod tidy` loads them
	github.com/google/go-cmp v0.5.9 // indirect
	golang.org/x/net v0.7.0 // indirect
	golang.org/x/sys v0.3.0 // indirect
	golang.org/x/text v0.7.0 // indirect
	google.golang.org/genproto v0.0.0-20200413115906-b5235f65be36
	google.golang.org/grpc v1.33.3
	google.golang.org/protobuf v1.28.1
)

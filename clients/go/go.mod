module vericlip/clients/go

go 1.19

// The versions the client is tested with (Debian 12's golang-google-grpc-dev and
// golang-google-protobuf-dev; see README.md for building with the module proxy instead).
require (
	google.golang.org/grpc v1.33.3
	google.golang.org/protobuf v1.28.1
)

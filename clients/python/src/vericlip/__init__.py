"""Generated gRPC stubs of the Vericlip API (proto package `vericlip`); see vericlip_client."""

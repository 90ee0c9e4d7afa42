"""vericlip_client.v1: the stubs clients/python/generate.sh writes from proto/vericlip/v1/vericlip.proto."""

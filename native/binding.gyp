{
  "targets": [
    { "target_name": "wgnet_memory", "sources": ["memory.c"], "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"], "conditions": [["OS!='linux'", { "type": "none" }]] },
    {
      "target_name": "wgnet_tun",
      "sources": ["tun.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [["OS!='linux'", { "type": "none" }]]
    },
    {
      "target_name": "wgnet_udp",
      "sources": ["udp.c", "ping.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [["OS!='linux'", { "type": "none" }]]
    }
  ]
}

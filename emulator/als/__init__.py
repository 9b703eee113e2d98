"""The Additional Layer Store: the emulator's lazy store as containers/storage sees stargz-store.

Owns: the store's path layout (`layout`: `<store>/<base64(ref)>/<layer digest>/{diff/,info,blob}`,
`use` signalling, `rmdir` release; formats spec section 4), the `info` records of both digest
conventions (`info`), one layer's tree in overlay's on-disk form (`layerview`: whiteouts as
0/0 character devices, opaque directories as `trusted.overlay.opaque=y`), the store that
resolves references and layers on demand over HTTP (`store`), and the FUSE file system that
serves it (`operations`, `serve`).
"""

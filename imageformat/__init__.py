"""Layer bytes, pure and exact.

Owns: digests, ByteRange, the OCI image layout and manifests, the layer codecs
(zstd:chunked in both generations, eStargz, plain gzip and zstd), their TOCs as one
format-independent model (`imageformat.toc`), and decoding any file or byte range of a
file from the compressed ranges the TOC names. No network, no FUSE, no simulation.
"""

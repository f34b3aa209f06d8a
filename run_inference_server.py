#!/usr/bin/env python3
"""Start the BitNet HTTP server (bitnet.cpp's run_inference_server.py flags), with guard rails:
it refuses to listen beyond loopback without --api-key unless --force-public is given, and checks
batch size, context and port before anything starts. Standard library only.

  python run_inference_server.py                         # default model on 127.0.0.1:8080
  python run_inference_server.py -m model.gguf --host 0.0.0.0 --api-key "$KEY"
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "python"))

from bitnet.cli import run_script  # noqa: E402
from bitnet.config import ServerConfig  # noqa: E402
from bitnet.runtime import BitNetRuntime  # noqa: E402

PROG = "run_inference_server"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_inference_server.py", description="Run the inference server")
    p.add_argument("-m", "--model", default=None, help="GGUF model (default: the generated default model)")
    p.add_argument("-n", "--n-predict", type=int, default=4096, help="default token limit per request")
    p.add_argument("-p", "--prompt", default=None, help="system prompt primed into every slot")
    p.add_argument("-t", "--threads", type=int, default=0, help="threads (default 0: automatic)")
    p.add_argument("-c", "--ctx-size", type=int, default=2048, help="context size (default 2048)")
    p.add_argument("--temperature", "-temp", type=float, default=0.8, help="default temperature")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("-b", "--batch-size", type=int, default=512, help="prompt batch size (1..65536, ≤ -c)")
    p.add_argument("-ngl", "--gpu-layers", type=int, default=0, help="run the last N layers on the GPU (CUDA builds; gpu/README.md)")
    p.add_argument("-ctk", "--cache-type-k", default="f16", help="KV cache type of the keys: f16 (default) or q8_0 (CPU only)")
    p.add_argument("-ctv", "--cache-type-v", default="f16", help="KV cache type of the values: f16 (default) or q8_0 (CPU only)")
    p.add_argument("-np", "--parallel", type=int, default=1, help="requests served at once (slots)")
    p.add_argument("-kvu", "--kv-unified", action="store_true",
                   help="one KV cache of -c positions shared by the slots: each may use all of it (CPU only)")
    p.add_argument("--context-shift", action="store_true",
                   help="a reply that fills its slot keeps the request's n_keep first tokens, drops half of the rest and goes on")
    p.add_argument("-cb", "--cont-batching", action="store_true", default=True, help="continuous batching (default)")
    p.add_argument("-nocb", "--no-cont-batching", action="store_true", help="disable continuous batching")
    p.add_argument("--api-key", default=os.environ.get("BITNET_API_KEY"),
                   help="require this key (or $BITNET_API_KEY); the server gets it in its environment "
                        "(LLAMA_API_KEY), never on its command line")
    p.add_argument("--force-public", action="store_true", help="allow a non-loopback --host without --api-key")
    p.add_argument("--telemetry-out", default=None, help="append JSONL telemetry events to this file")
    p.add_argument("--dry-run", action="store_true", help="print the configuration and command; start nothing")
    p.add_argument("--diagnostics", action="store_true", help="check the environment and port, then exit")
    p.add_argument("--json", action="store_true", help="with --dry-run / --diagnostics: JSON output")
    return p


def config_from(args) -> ServerConfig:
    return ServerConfig(model=args.model, host=args.host, port=args.port, threads=args.threads,
                        ctx_size=args.ctx_size, n_predict=args.n_predict, temperature=args.temperature,
                        batch_size=args.batch_size, gpu_layers=args.gpu_layers, parallel=args.parallel,
                        cont_batching=not args.no_cont_batching, kv_unified=args.kv_unified,
                        context_shift=args.context_shift, api_key=args.api_key,
                        allow_public=args.force_public, prompt=args.prompt, telemetry_out=args.telemetry_out,
                        cache_type_k=args.cache_type_k, cache_type_v=args.cache_type_v)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    runtime = BitNetRuntime()
    diagnose = None
    if args.diagnostics:
        def diagnose():
            # --port 0 (any free port) has no particular port to check.
            return runtime.diagnostics(args.model, args.ctx_size, args.threads, port=args.port or None,
                                       host=args.host, parallel=args.parallel, kv_unified=args.kv_unified)
    return run_script(PROG, runtime, lambda: config_from(args), runtime.run_server, args.dry_run, args.json,
                      diagnose)


if __name__ == "__main__":
    sys.exit(main())

"""`bmfleet worker publish`: what a publish Job runs. Push the combined bmodel (verified against its digest), the
gate report and result and the provenance record to the OCI registry as one ORAS-compatible artifact. The files
come from the build's store, whatever its backend (fetched by digest from a remote one)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bmfleet.store.artifact import MEDIA_BMODEL, MEDIA_GATE_REPORT, MEDIA_GATE_RESULT, MEDIA_PROVENANCE, ArtifactFile
from bmfleet.store.base import StoreError
from bmfleet.worker.compile import EXIT_BAD_INPUT, EXIT_FAILED, write_result
from bmfleet.worker.storage import add_store_arguments, open_step_store


def main(argv: list[str]) -> int:
    """Push; the record carries the manifest digest and the bmodel's oci:// address."""
    p = argparse.ArgumentParser(prog="bmfleet worker publish", description="Push a verified bmodel to a registry.")
    p.add_argument("--registry", required=True, help="oci://host[:port]/repository")
    p.add_argument("--bmodel", required=True)
    add_store_arguments(p)
    p.add_argument("--provenance", required=True, help="provenance record as JSON")
    p.add_argument("--report")
    p.add_argument("--gate-result")
    p.add_argument("--tag")
    p.add_argument("--credentials", help="a .dockerconfigjson file")
    p.add_argument("--outdir", help="scratch space for the files fetched from the store (default: beside --result)")
    p.add_argument("--result")
    args = p.parse_args(argv)
    from bmfleet.store.oci import OciStore

    try:
        work = Path(args.outdir) if args.outdir else Path(args.result).parent if args.result else Path(".")
        work.mkdir(parents=True, exist_ok=True)
        prov = work / "provenance.json"
        prov.write_text(json.dumps(json.loads(args.provenance), indent=1, sort_keys=True))
        store = open_step_store(args.store, args.store_credentials)
        bmodel = store.local(args.bmodel, work / "stored" / "model.bmodel")
        files = [ArtifactFile(bmodel, MEDIA_BMODEL, "model.bmodel"), ArtifactFile(prov, MEDIA_PROVENANCE)]
        for uri, media_type, title in ((args.report, MEDIA_GATE_REPORT, "report.html"),
                                       (args.gate_result, MEDIA_GATE_RESULT, "result.json")):  # fmt: skip
            if uri:
                files.append(ArtifactFile(store.local(uri, work / "stored" / title), media_type, title))
    except StoreError as exc:
        write_result(args.result, {"state": "Failed", "reason": "StoreFailed", "message": str(exc)[:3000]})
        return EXIT_FAILED
    except (ValueError, OSError) as exc:
        write_result(args.result, {"state": "Failed", "reason": "BadInput", "message": str(exc)[:3000]})
        return EXIT_BAD_INPUT
    try:
        secret = json.loads(Path(args.credentials).read_text()) if args.credentials else None
        registry = OciStore.from_uri(args.registry, secret)
        manifest = registry.push_artifact(files, tag=args.tag)
        blob = registry.put(bmodel)  # already there: a HEAD; gives the digest the devices fetch
    except (ValueError, OSError) as exc:
        write_result(args.result, {"state": "Failed", "reason": "BadInput", "message": str(exc)[:3000]})
        return EXIT_BAD_INPUT
    except StoreError as exc:
        write_result(args.result, {"state": "Failed", "reason": "RegistryUnavailable", "message": str(exc)[:3000]})
        return EXIT_FAILED
    uri = f"{args.registry}@sha256:{blob.digest}"
    write_result(args.result, {"state": "Succeeded", "manifest": manifest.digest, "uri": uri})
    return 0

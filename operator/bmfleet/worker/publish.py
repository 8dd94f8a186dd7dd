"""`bmfleet worker publish`: what a publish Job runs. Push the combined bmodel (verified against its digest), the
gate report and result and the provenance record to the OCI registry as one ORAS-compatible artifact."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bmfleet.store.artifact import MEDIA_BMODEL, MEDIA_GATE_REPORT, MEDIA_GATE_RESULT, MEDIA_PROVENANCE, ArtifactFile
from bmfleet.store.base import StoreError
from bmfleet.store.fs import FileStore
from bmfleet.worker.compile import EXIT_BAD_INPUT, EXIT_FAILED, store_location, write_result


def _stored(uri: str, root: Path, base: str) -> Path:
    if not uri.startswith(base + "/"):
        raise ValueError(f"{uri} is not in the build's store {base}")
    return FileStore(root).path(uri.removeprefix(base + "/"))


def main(argv: list[str]) -> int:
    """Push; the record carries the manifest digest and the bmodel's oci:// address."""
    p = argparse.ArgumentParser(prog="bmfleet worker publish", description="Push a verified bmodel to a registry.")
    p.add_argument("--registry", required=True, help="oci://host[:port]/repository")
    p.add_argument("--bmodel", required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--provenance", required=True, help="provenance record as JSON")
    p.add_argument("--report")
    p.add_argument("--gate-result")
    p.add_argument("--tag")
    p.add_argument("--credentials", help="a .dockerconfigjson file")
    p.add_argument("--result")
    args = p.parse_args(argv)
    from bmfleet.store.oci import OciStore

    root, base = store_location(args.store)
    try:
        work = Path(args.result).parent if args.result else Path(".")
        prov = work / "provenance.json"
        prov.write_text(json.dumps(json.loads(args.provenance), indent=1, sort_keys=True))
        bmodel = _stored(args.bmodel, root, base)
        files = [ArtifactFile(bmodel, MEDIA_BMODEL, "model.bmodel"), ArtifactFile(prov, MEDIA_PROVENANCE)]
        if args.report:
            files.append(ArtifactFile(_stored(args.report, root, base), MEDIA_GATE_REPORT, "report.html"))
        if args.gate_result:
            files.append(ArtifactFile(_stored(args.gate_result, root, base), MEDIA_GATE_RESULT, "result.json"))
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

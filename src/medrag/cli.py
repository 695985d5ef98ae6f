"""The `medrag` command: ingest, add, remove, reindex, migrate, ask, serve, eval."""

import argparse
import json
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from .errors import BadInputError, MedragError
from .settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="medrag", description="Question answering with citations over Chinese medical documents."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="add or update documents in the index (default: the corpus folder)")
    ingest.add_argument("paths", nargs="*", type=Path, help="files or folders (.md, .txt)")

    add = commands.add_parser("add", help="add or update documents: files, folders and http(s) URLs")
    add.add_argument("items", nargs="*", metavar="PATH|URL", help=".md, .txt, .html or .pdf files, folders, or URLs")
    add.add_argument(
        "--cited",
        action="store_true",
        help="also fetch the articles the report cites (listed in CORPUS_DIR/sources.json)",
    )

    remove = commands.add_parser("remove", help="remove documents from the index by id (see GET /documents)")
    remove.add_argument("doc_ids", nargs="+", metavar="ID")

    commands.add_parser(
        "reindex", help="chunk and embed every indexed document again (after a model or chunker change)"
    )

    migrate = commands.add_parser(
        "migrate",
        help="copy the FAISS index in MEDRAG_INDEX_DIR to another store, vectors and all (nothing is embedded again)",
    )
    migrate.add_argument(
        "--to",
        required=True,
        choices=["milvus"],
        dest="target",
        help="milvus: the collection MEDRAG_MILVUS_COLLECTION at MEDRAG_MILVUS_URI",
    )

    ask = commands.add_parser("ask", help="answer one question and print the citations")
    ask.add_argument("question")
    ask.add_argument("--top-k", type=int, default=None)

    serve = commands.add_parser("serve", help="start the HTTP service (builds the index first if there is none)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)

    evaluate = commands.add_parser("eval", help="score a question set (JSONL) through the real pipeline")
    evaluate.add_argument("file", type=Path)
    evaluate.add_argument(
        "--retriever",
        action="append",
        choices=["hybrid", "dense", "bm25"],
        help="retrieval mode to score; repeat to compare modes side by side (default: hybrid)",
    )
    evaluate.add_argument("--url", help="score a running server at this base URL instead of the local index")
    evaluate.add_argument("--json", type=Path, dest="json_path", help="also write the results as JSON here")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("faiss").setLevel(logging.WARNING)
    try:
        settings = Settings()
        runners = {
            "ingest": run_ingest,
            "add": run_add,
            "remove": run_remove,
            "reindex": run_reindex,
            "migrate": run_migrate,
            "ask": run_ask,
            "serve": run_serve,
            "eval": run_eval,
        }
        return runners[args.command](args, settings)
    except MedragError as error:
        print(f"medrag: {error}", file=sys.stderr)
        return 2
    except ValidationError as error:  # a MEDRAG_* setting out of range: say which, without a traceback
        for problem in error.errors():
            field = "MEDRAG_" + "_".join(str(part) for part in problem["loc"]).upper() if problem["loc"] else "settings"
            print(f"medrag: {field}: {problem['msg']}", file=sys.stderr)
        return 2


def write(settings: Settings, **change):
    """One index update with a progress bar on stderr; says so when another writer holds the lock."""
    from tqdm import tqdm

    from . import indexing
    from .api.app import store_for
    from .embedding import load_embedder

    embedder = load_embedder(settings.embed_model, settings.embed_threads, settings.embed_batch_size)
    with tqdm(total=0, unit="chunk", desc="embedding", file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        def waiting() -> None:
            bar.write("another writer holds the index lock; waiting for it to finish", file=sys.stderr)

        return indexing.update(
            store_for(settings),
            embedder,
            size=settings.chunk_size,
            overlap=settings.chunk_overlap,
            progress=progress,
            waiting=waiting,
            **change,
        )


def report(change) -> None:
    for doc_id, outcome in change.outcomes.items():
        print(f"{outcome:>10}  {doc_id}")
    print(f"live version: {change.version}", file=sys.stderr)


def build(settings: Settings, paths: list[Path]) -> None:
    from . import corpus

    documents = corpus.load_paths(paths or [settings.corpus_dir])
    change = write(settings, add=documents)
    for doc_id, outcome in change.outcomes.items():
        print(f"{outcome:>10}  {doc_id}")
    print(f"indexed {len(documents)} document(s); live version: {change.version}", file=sys.stderr)


def run_ingest(args, settings: Settings) -> int:
    build(settings, args.paths)
    return 0


def cited_sources(settings: Settings) -> list[dict]:
    """The articles listed in the sources manifest: [{"url", "title", "publisher", "year"}, ...]."""
    manifest = settings.corpus_dir / "sources.json"
    if not manifest.is_file():
        raise BadInputError(f"no sources manifest at {manifest}")
    try:
        return json.loads(manifest.read_text(encoding="utf-8"))["sources"]
    except (ValueError, KeyError) as error:
        raise BadInputError(f"{manifest}: not a sources manifest ({error})") from error


def run_add(args, settings: Settings) -> int:
    from dataclasses import replace

    from tqdm import tqdm

    from . import corpus, indexing
    from .fetching import Fetcher

    items = [{"url": item} if "://" in item else {"path": item} for item in args.items]
    if args.cited:
        items += cited_sources(settings)
    if not items:
        raise BadInputError("nothing to add: name files, folders or URLs, or use --cited")
    fetcher = Fetcher(max_bytes=settings.fetch_max_bytes, timeout=settings.fetch_timeout, allow=settings.fetch_allow)
    documents, failures = [], 0
    for item in tqdm(items, unit="item", desc="loading", file=sys.stderr, disable=len(items) < 2):
        try:
            if "path" in item:
                documents += corpus.load_paths([Path(item["path"])])
                continue
            document = indexing.document_from_url(fetcher, item["url"])
            # A manifest entry's publisher is curated (a page without one gets its host name);
            # the page's own date is more precise than the manifest's year.
            documents.append(
                replace(
                    document,
                    publisher=item.get("publisher") or document.publisher,
                    date=document.date or item.get("year", ""),
                )
            )
        except MedragError as error:
            failures += 1
            tqdm.write(f"medrag: {error}", file=sys.stderr)
    if documents:
        report(write(settings, add=documents))
    print(f"{len(documents)} document(s) loaded, {failures} failed", file=sys.stderr)
    return 1 if failures else 0


def run_remove(args, settings: Settings) -> int:
    report(write(settings, remove=args.doc_ids))
    return 0


def run_reindex(args, settings: Settings) -> int:
    from .api.app import store_for

    if store_for(settings).live_version() is None:
        print(f"no index yet: building it from {settings.corpus_dir}/", file=sys.stderr)
        build(settings, [])
    else:
        report(write(settings, rebuild=True))
    return 0


def run_migrate(args, settings: Settings) -> int:
    from . import store
    from .api.app import store_for
    from .errors import IndexMissingError

    source = store.load(settings.index_dir)
    target = store_for(settings, args.target)
    with target.lock():
        try:
            replaced = set(target.load().documents)
        except IndexMissingError:
            replaced = set()
        # Everything is replaced at once: the target switches to the copy only when it is whole.
        version = target.write(
            add=list(source.documents.values()),
            chunks=source.chunks,
            vectors=source.all_vectors(),
            remove=replaced,
            manifest={**source.manifest, "migrated_from": source.version},
        )
    copied = target.load(source.manifest["model_id"])
    if (copied.manifest["documents"], copied.manifest["chunks"]) != (len(source.documents), len(source.chunks)):
        raise store.IndexMismatchError(
            f"the copy holds {copied.manifest['documents']} documents and "
            f"{copied.manifest['chunks']} chunks, not {len(source.documents)} and "
            f"{len(source.chunks)}: run `medrag migrate` again"
        )
    print(
        f"copied {len(source.documents)} document(s) and {len(source.chunks)} chunk(s) from {source.path} "
        f"to {args.target}; live version: {version}",
        file=sys.stderr,
    )
    if settings.store != args.target:
        print(f"set MEDRAG_STORE={args.target} to serve from it", file=sys.stderr)
    return 0


def run_ask(args, settings: Settings) -> int:
    from .api.app import pipeline_for

    pipeline = pipeline_for(settings)
    snapshot = pipeline.snapshot()  # one version for the answer and the documents it cites
    answer = pipeline.ask(args.question, args.top_k, snapshot=snapshot)
    print(answer.text)
    documents = snapshot.index.documents
    for citation in answer.citations:
        chunk = citation.hit.chunk
        document = documents.get(chunk.doc_id)
        print(f"\n[{citation.n}] {document.title if document else chunk.doc_id} > {' > '.join(chunk.section)}")
        if document and document.url:
            print(f"    {document.url}")
        for url in chunk.links:
            print(f"    cites {url}")
        print(f"    {chunk.text[:200]}")
    return 0 if answer.found else 1


def run_eval(args, settings: Settings) -> int:
    import json

    from .evaluation import evaluate, format_table, load_questions

    items = load_questions(args.file)
    modes = args.retriever or ["hybrid"]
    reports = {}
    for mode in modes:
        ask, search = _remote(args.url, mode) if args.url else _local(settings, mode)
        reports[mode] = evaluate(items, ask, search)
    print(format_table({mode: report.summary() for mode, report in reports.items()}))
    for mode, report in reports.items():
        for item in report.items:
            if not item.correct:
                print(f"[{mode}] missed {item.id}: {item.question} -> {item.answer[:80]}")
    if args.json_path:
        args.json_path.write_text(
            json.dumps({m: r.to_json() for m, r in reports.items()}, ensure_ascii=False, indent=2), encoding="utf-8"
        )
    return 0


def _local(settings: Settings, mode: str):
    from .api.app import pipeline_for
    from .api.schemas import answer_out, citation_out

    pipeline = pipeline_for(settings)

    def ask(question: str) -> dict:
        snapshot = pipeline.snapshot()
        return answer_out(pipeline.ask(question, mode=mode, snapshot=snapshot), snapshot.index.documents).model_dump()

    def search(question: str, k: int) -> list[dict]:
        snapshot = pipeline.snapshot()
        documents = snapshot.index.documents
        return [
            citation_out(i + 1, h, documents.get(h.chunk.doc_id)).model_dump()
            for i, h in enumerate(pipeline.search(question, k, mode, snapshot=snapshot))
        ]

    return ask, search


def _remote(url: str, mode: str):
    import httpx

    client = httpx.Client(base_url=url.rstrip("/"), timeout=60)

    def ask(question: str) -> dict:
        response = client.post("/ask", json={"question": question, "retriever": mode})
        response.raise_for_status()
        return response.json()

    def search(question: str, k: int) -> list[dict]:
        response = client.get("/search", params={"q": question, "k": k, "mode": mode})
        response.raise_for_status()
        return response.json()["hits"]

    return ask, search


def run_serve(args, settings: Settings) -> int:
    import uvicorn

    from .api.app import create_app, store_for

    if store_for(settings).live_version() is None:
        print(f"no index yet: building it from {settings.corpus_dir}/", file=sys.stderr)
        build(settings, [])
    uvicorn.run(create_app(settings), host=args.host or settings.host, port=args.port or settings.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The `medrag` command: ingest, ask, serve."""

import argparse
import logging
import sys
from pathlib import Path

from .errors import MedragError
from .settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="medrag", description="Question answering with citations over Chinese medical documents.")
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="add or update documents in the index (default: the corpus folder)")
    ingest.add_argument("paths", nargs="*", type=Path, help="files or folders (.md, .txt)")

    ask = commands.add_parser("ask", help="answer one question and print the citations")
    ask.add_argument("question")
    ask.add_argument("--top-k", type=int, default=None)

    serve = commands.add_parser("serve", help="start the HTTP service (builds the index first if there is none)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("faiss").setLevel(logging.WARNING)
    try:
        settings = Settings()
        return {"ingest": run_ingest, "ask": run_ask, "serve": run_serve}[args.command](args, settings)
    except MedragError as error:
        print(f"medrag: {error}", file=sys.stderr)
        return 2


def build(settings: Settings, paths: list[Path]) -> None:
    from tqdm import tqdm

    from . import corpus, indexing
    from .embedding import load_embedder

    documents = corpus.load_paths(paths or [settings.corpus_dir])
    embedder = load_embedder(settings.embed_model, settings.embed_threads, settings.embed_batch_size)
    with tqdm(total=0, unit="chunk", desc="embedding", file=sys.stderr) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        path = indexing.update(settings.index_dir, embedder, add=documents, size=settings.chunk_size,
                               overlap=settings.chunk_overlap, progress=progress)
    print(f"indexed {len(documents)} document(s) into {path}", file=sys.stderr)


def run_ingest(args, settings: Settings) -> int:
    build(settings, args.paths)
    return 0


def run_ask(args, settings: Settings) -> int:
    from .api.app import pipeline_for

    pipeline = pipeline_for(settings)
    answer = pipeline.ask(args.question, args.top_k)
    print(answer.text)
    documents = pipeline.snapshot().index.documents
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


def run_serve(args, settings: Settings) -> int:
    import uvicorn

    from . import store
    from .api.app import create_app

    if store.current_path(settings.index_dir) is None:
        print(f"no index in {settings.index_dir}/: building it from {settings.corpus_dir}/", file=sys.stderr)
        build(settings, [])
    uvicorn.run(create_app(settings), host=args.host or settings.host, port=args.port or settings.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())

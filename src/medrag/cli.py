"""The `medrag` command: ingest, add, remove, reindex, migrate, verify, repair, ask, serve, eval, kb.

Thin: parse the arguments, call the service, print what it returns.
"""

import argparse
import json
import logging
import os
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

    commands.add_parser(
        "verify", help="check every index version's files; exit 1 when the live one is missing or damaged"
    )
    commands.add_parser(
        "repair", help="make the newest whole index version live when the live one is missing or damaged"
    )

    ask = commands.add_parser("ask", help="answer one question and print the citations")
    ask.add_argument("question")
    ask.add_argument("--top-k", type=int, default=None)

    serve = commands.add_parser("serve", help="start the HTTP service (builds the index first if there is none)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes answering questions side by side; with more than one, none of them writes "
        "(MEDRAG_READ_ONLY): write with `medrag add` or a one-worker `medrag serve`",
    )

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

    knowledge = commands.add_parser("kb", help="list, create or delete knowledge bases")
    actions = knowledge.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every knowledge base, default first")
    create = actions.add_parser("create", help="create an empty knowledge base")
    create.add_argument("name", help="1 to 64 characters of a-z, 0-9, _ and -")
    create.add_argument("--title", default="")
    create.add_argument("--description", default="")
    create.add_argument("--embed-model", default=None, help="its embedding model (default: MEDRAG_EMBED_MODEL)")
    create.add_argument("--private", action="store_true", help="reading it needs the admin token or a read token")
    delete = actions.add_parser("delete", help="delete a knowledge base with its documents")
    delete.add_argument("name")
    for command in commands.choices.values():
        command.add_argument("--kb", default="default", help="the knowledge base (default: default)")

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
            "verify": run_verify,
            "repair": run_repair,
            "ask": run_ask,
            "serve": run_serve,
            "eval": run_eval,
            "kb": run_kb,
        }
        return runners[args.command](args, settings)
    except MedragError as error:
        print(f"medrag: {error}", file=sys.stderr)
        return 2
    except ValidationError as error:  # a MEDRAG_* setting out of range: say which, without a traceback
        for problem in error.errors():
            loc = problem["loc"]
            field = "MEDRAG_" + "_".join(str(part) for part in loc).upper() if loc else "settings"
            print(f"medrag: {field}: {problem['msg']}", file=sys.stderr)
        return 2


def service_for(settings: Settings):
    from .service import Service

    return Service(settings)


def follow(job) -> dict[str, str]:
    """Show a write's progress on stderr until it ends; its outcomes, or its error raised as a `MedragError`."""
    from tqdm import tqdm

    told = False
    with tqdm(total=0, unit="chunk", desc="embedding", file=sys.stderr) as bar:
        while True:
            finished = job.wait(0.1)
            bar.total, bar.n = job.total, job.done
            bar.refresh()
            if job.waiting and not told:
                bar.write("another writer holds the index lock; waiting for it to finish", file=sys.stderr)
                told = True
            if finished:
                break
    for outcome in job.outcomes.values():
        if outcome.startswith("failed: "):
            print(f"medrag: {outcome.removeprefix('failed: ')}", file=sys.stderr)
    if job.error:
        error = MedragError(job.error["detail"])
        error.code = job.error["code"]
        raise error
    return job.outcomes


def report(outcomes: dict[str, str], version: str | None) -> None:
    for doc_id, outcome in outcomes.items():
        if not outcome.startswith("failed: "):
            print(f"{outcome:>10}  {doc_id}")
    print(f"live version: {version}", file=sys.stderr)


def run_ingest(args, settings: Settings) -> int:
    job = service_for(settings).add(paths=args.paths or [settings.corpus_dir], kb=args.kb)
    outcomes = follow(job)
    report(outcomes, job.version)
    loaded = sum(not outcome.startswith("failed: ") for outcome in outcomes.values())
    print(f"indexed {loaded} document(s)", file=sys.stderr)
    return 1 if loaded < len(outcomes) else 0


def cited_sources(settings: Settings) -> list:
    """The articles listed in the sources manifest."""
    from .types import Source

    manifest = settings.corpus_dir / "sources.json"
    if not manifest.is_file():
        raise BadInputError(f"no sources manifest at {manifest}")
    try:
        return [Source(**entry) for entry in json.loads(manifest.read_text(encoding="utf-8"))["sources"]]
    except (ValueError, KeyError, TypeError) as error:
        raise BadInputError(f"{manifest}: not a sources manifest ({error})") from error


def run_add(args, settings: Settings) -> int:
    urls = [item for item in args.items if "://" in item]
    paths = [Path(item) for item in args.items if "://" not in item]
    if args.cited:
        urls += cited_sources(settings)
    if not (urls or paths):
        raise BadInputError("nothing to add: name files, folders or URLs, or use --cited")
    job = service_for(settings).add(paths=paths, urls=urls, kb=args.kb)
    try:
        outcomes = follow(job)
    except MedragError:
        outcomes = job.outcomes  # nothing loaded: each failure was printed
    failures = sum(outcome.startswith("failed: ") for outcome in outcomes.values())
    if len(outcomes) > failures:
        report(outcomes, job.version)
    print(f"{len(outcomes) - failures} document(s) loaded, {failures} failed", file=sys.stderr)
    return 1 if failures else 0


def run_remove(args, settings: Settings) -> int:
    job = service_for(settings).remove(args.doc_ids, args.kb)
    report(follow(job), job.version)
    return 0


def run_reindex(args, settings: Settings) -> int:
    service = service_for(settings)
    job = service.build_if_missing() if args.kb == "default" else None
    if job is not None:
        print(f"no index yet: building it from {settings.corpus_dir}/", file=sys.stderr)
    else:
        job = service.reindex(args.kb)
    report(follow(job), job.version)
    return 0


def run_migrate(args, settings: Settings) -> int:
    for kb, migration in service_for(settings).migrate(args.target):
        print(
            f"{kb}: copied {migration.documents} document(s) and {migration.chunks} chunk(s) from "
            f"{migration.source} to {args.target}; live version: {migration.version}",
            file=sys.stderr,
        )
    if settings.store != args.target:
        print(f"set MEDRAG_STORE={args.target} to serve from it", file=sys.stderr)
    return 0


def store_for(settings: Settings, kb: str = "default"):
    """The configured store alone: checking and repairing versions needs no model."""
    from .service import store_for

    return store_for(settings, kb=kb)


def run_verify(args, settings: Settings) -> int:
    states = store_for(settings, args.kb).verify()
    for state in states:
        print(f"{state.version}  {'ok' if state.problem is None else 'damaged'}{'  (live)' if state.live else ''}")
        if state.problem is not None:
            print(f"    {state.problem}")
    live = [state for state in states if state.live]
    if not live:
        print("medrag: no live version: run `medrag repair`" if states else "medrag: no index", file=sys.stderr)
        return 1
    return 1 if live[0].problem is not None else 0


def run_repair(args, settings: Settings) -> int:
    version = store_for(settings, args.kb).repair()
    print(f"live version: {version}", file=sys.stderr)
    return 0


def run_ask(args, settings: Settings) -> int:
    reply = service_for(settings).ask(args.question, top_k=args.top_k, kb=args.kb)
    answer = reply.answer
    print(answer.text)
    for citation in answer.citations:
        chunk = citation.hit.chunk
        document = reply.documents.get(chunk.doc_id)
        print(f"\n[{citation.n}] {document.title if document else chunk.doc_id} > {' > '.join(chunk.section)}")
        if document and document.url:
            print(f"    {document.url}")
        for url in chunk.links:
            print(f"    cites {url}")
        print(f"    {chunk.text[:200]}")
    return 0 if answer.found else 1


def run_eval(args, settings: Settings) -> int:
    from .evaluation import evaluate, format_table, load_questions

    items = load_questions(args.file)
    modes = args.retriever or ["hybrid"]
    reports = {}
    for mode in modes:
        ask, search = _remote(args.url, mode, args.kb) if args.url else _local(settings, mode, args.kb)
        reports[mode] = evaluate(items, ask, search)
    print(format_table({mode: report.summary() for mode, report in reports.items()}))
    for mode, report in reports.items():
        for item in report.items:
            if not item.correct:
                print(f"[{mode}] missed {item.id}: {item.question} -> {item.answer[:80]}")
    if args.json_path:
        args.json_path.write_text(
            json.dumps({m: r.to_json() for m, r in reports.items()}, ensure_ascii=False, indent=2),
            encoding="utf-8",
        )
    return 0


def _local(settings: Settings, mode: str, kb: str = "default"):
    from .evaluation import ask_reply, search_results

    service = service_for(settings)

    def ask(question: str) -> dict:
        return ask_reply(service.ask(question, mode=mode, kb=kb))

    def search(question: str, k: int) -> list[dict]:
        return search_results(service.search(question, k=k, mode=mode, kb=kb))

    return ask, search


def _remote(url: str, mode: str, kb: str = "default"):
    import httpx

    client = httpx.Client(base_url=url.rstrip("/"), timeout=60)

    def ask(question: str) -> dict:
        response = client.post("/ask", json={"question": question, "retriever": mode, "kb": kb})
        response.raise_for_status()
        return response.json()

    def search(question: str, k: int) -> list[dict]:
        response = client.get("/search", params={"q": question, "k": k, "mode": mode, "kb": kb})
        response.raise_for_status()
        return response.json()["hits"]

    return ask, search


def run_kb(args, settings: Settings) -> int:
    from .stores.catalog import KnowledgeBase

    service = service_for(settings)
    if args.action == "create":
        record = KnowledgeBase(args.name, args.title, args.description, args.embed_model, args.private)
        service.create_kb(record)
        print(f"created knowledge base {args.name}; add documents with `medrag add --kb {args.name} PATH`")
    elif args.action == "delete":
        service.delete_kb(args.name, wait=True)
        print(f"deleted knowledge base {args.name}")
    else:
        for record in service.knowledge_bases():
            print(f"{record.name}\t{'private' if record.private else 'public'}\t{record.title}")
    return 0


def run_serve(args, settings: Settings) -> int:
    import uvicorn

    if args.workers < 1:
        raise BadInputError(f"--workers must be at least 1, got {args.workers}")
    from .service import store_for

    if not store_for(settings).versions():  # a whole service (its encoders) only to build a missing index
        service = service_for(settings)
        job = service.build_if_missing()
        if job is not None:
            print(f"no index yet: building it from {settings.corpus_dir}/", file=sys.stderr)
            follow(job)
        service.close()
    if args.workers > 1:
        # Workers read their settings from the environment: none writes (one writer per index, and
        # each would run the queued jobs), and they share the cores rather than each taking them all.
        os.environ["MEDRAG_READ_ONLY"] = "true"
        if "MEDRAG_QUERY_ENCODERS" not in os.environ:
            os.environ["MEDRAG_QUERY_ENCODERS"] = str(max(1, settings.query_encoders // args.workers))
    # The app is named for uvicorn as `uvicorn --factory` names it: the command line imports nothing
    # from the HTTP package, and the app reads the same MEDRAG_* settings from the environment.
    # proxy_headers=False: uvicorn would trust X-Forwarded-For from 127.0.0.1; the app trusts only
    # MEDRAG_TRUSTED_PROXIES (api/middleware.py), and logs each request itself, without questions.
    uvicorn.run(
        "medrag.api.app:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers,
        proxy_headers=False,
        access_log=False,
        http="medrag.api.timeouts:HeaderTimeoutProtocol",  # slow request headers get 408 (MEDRAG_REQUEST_TIMEOUT)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

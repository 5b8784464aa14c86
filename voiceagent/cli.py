"""The ``voiceagent`` command line. The only place that configures logging."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from voiceagent.config import Config, load_config
from voiceagent.errors import VoiceAgentError

logger = logging.getLogger("voiceagent")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="voiceagent", description=__doc__)
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--config", "-c", help="config file (default: ./config.yaml)")
        return sp

    run = with_config(sub.add_parser("run", help="converse with a WAV file or raw PCM on stdin"))
    run.add_argument("--input", "-i", required=True, help="WAV file, or - for raw PCM on stdin")
    run.add_argument("--output", "-o", required=True, help="WAV file, or - for raw PCM on stdout")
    run.add_argument("--events", "-e", help="write events as JSON lines to this file")
    run.add_argument(
        "--echo",
        metavar="DELAY_MS:GAIN_DB",
        type=_echo_spec,
        help="mix the program's own output back into its input after DELAY_MS through "
        "a short room response at GAIN_DB, e.g. 40:-6 (tries echo cancellation)",
    )

    talk = with_config(sub.add_parser("talk", help="live conversation on the sound devices"))
    talk.add_argument("--events", "-e", help="write events as JSON lines to this file")
    talk.add_argument("--input-device", help="name or index (see 'voiceagent devices')")
    talk.add_argument("--output-device", help="name or index")
    talk.add_argument("--duration", type=float, help="stop after this many seconds")

    serve = with_config(sub.add_parser(
        "serve",
        help="run as a daemon: wake word, Home Assistant over MQTT, conversation log",
        description="Runs until SIGTERM or Ctrl+C. Audio from the configured sound devices, or "
        "from --input/--output as 'run' takes them (a WAV file or - for raw PCM); after the "
        "input ends it goes on hearing silence, still answering Home Assistant's commands.",
    ))
    serve.add_argument("--input", "-i", help="WAV file, or - for raw PCM on stdin")
    serve.add_argument("--output", "-o", help="WAV file, or - for raw PCM on stdout")
    serve.add_argument("--events", "-e", help="write events as JSON lines to this file")

    demo = with_config(sub.add_parser("demo", help="a spoken demo conversation, no microphone"))
    demo.add_argument("--output", "-o", default="demo-conversation.wav")
    demo.add_argument("--events", "-e", help="write events as JSON lines to this file")

    bench = with_config(sub.add_parser(
        "bench",
        help="measure latency, turn-taking and accuracy on a spoken corpus",
        description="Plays a reproducible espeak-ng corpus (questions, some with a mid-sentence "
        "pause) in real time into the pipeline, then a barge-in run with room echo, then a naive "
        "sequential baseline with the same models; prints a Markdown summary to stdout. "
        "With --corpus DIR it plays a folder of real recordings instead (WAV files described by "
        "requests.tsv and/or paused.tsv: name, speech_start_s, speech_end_s, [pauses_s as "
        "START-END,...,] transcript) and compares the end-of-turn detectors on them. "
        "Exits 0 when the run completed, whether or not the targets were met.",
    ))
    what = bench.add_mutually_exclusive_group(required=True)
    what.add_argument("--turns", type=_positive_int, metavar="N",
                      help="spoken questions in the espeak corpus")
    what.add_argument("--corpus", metavar="DIR",
                      help="a folder of real recordings to run instead of the espeak corpus")
    bench.add_argument("--json", metavar="PATH",
                       help="write the figures to PATH, the summary to PATH.md, a plot to PATH.png")
    bench.add_argument("--peer", choices=["pipecat"],
                       help="also run this external pipeline on the same audio")
    bench.add_argument("--seed", type=int, default=0, metavar="S",
                       help="corpus seed: sentences, voices, rates, pauses, noise; also the LLM's "
                            "sampling seed unless llm.seed is set (default 0)")
    bench.add_argument("--gap-s", type=_positive_float, metavar="G",
                       help="seconds after each question for the reply (default 10; 8 with --corpus)")
    bench.add_argument("--barge-in-turns", type=_non_negative_int, default=3, metavar="M",
                       help="questions interrupted in the barge-in run (default 3; 0: none)")

    sub.add_parser("devices", help="list audio devices")

    models = sub.add_parser("models", help="fetch or list model weights")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    pull = with_config(msub.add_parser("pull", help="fetch the default models into models/"))
    pull.add_argument("names", nargs="*",
                      help="only these models; optional ones (whisper-base) only when named")
    pull.add_argument("--dir", help="models directory (default: models/ beside the config)")
    pull.add_argument("--force", action="store_true", help="fetch again even if installed")
    lst = with_config(msub.add_parser(
        "list", help="show which models (default and optional) are installed"))
    lst.add_argument("--dir", help="models directory")
    return p


def _echo_spec(text: str):  # type: ignore[no-untyped-def]
    from voiceagent.audio.echo import parse_echo_spec

    try:
        return parse_echo_spec(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _setup_logging(verbose: int, cfg: Config | None) -> None:
    level = logging.WARNING
    if cfg is not None:
        level = getattr(logging, cfg.log_level.upper())
    if verbose:
        level = min(level, logging.INFO if verbose == 1 else logging.DEBUG)
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _models_dir(args: argparse.Namespace) -> Path:
    if args.dir:
        return Path(args.dir)
    return load_config(args.config).resolve(Path("models"))


def _cmd_run(args: argparse.Namespace, cfg: Config) -> int:
    from voiceagent.host.run import run_paced
    from voiceagent.session.display import event_sinks
    from voiceagent.stages.loading import load_models
    from voiceagent.audio.streams import check_output, open_input, open_output
    from voiceagent.metrics import format_barge_ins, format_table, unanswered_reason

    rate = cfg.audio.sample_rate
    # Everything that can be wrong with the arguments fails before the models
    # load (seconds): a bad or corrupt input, an output that cannot be written,
    # an unwritable event log. The output itself is opened (and an existing
    # file replaced) only once the models have loaded, so a failed load loses nothing.
    check_output(args.output)
    source = open_input(args.input, rate, cfg.audio.pcm)
    with event_sinks(args.events, session=cfg.serve.name) as (bus, tracker):
        models = load_models(cfg)
        sink = open_output(args.output, rate, cfg.audio.pcm)
        seconds = asyncio.run(run_paced(cfg, models, source, sink, bus, echo=args.echo))
    answered = tracker.answered()
    if not answered:  # the output, the events and the log are written all the same
        raise VoiceAgentError(f"no turn was answered in {seconds:.1f} s of input: {unanswered_reason(tracker)}")
    print(f"ran {seconds:.1f} s of audio", file=sys.stderr)
    print(format_table(answered), file=sys.stderr)
    if tracker.barge_ins:
        print(format_barge_ins(tracker.barge_ins), file=sys.stderr)
    return 0


def _cmd_talk(args: argparse.Namespace, cfg: Config) -> int:
    from voiceagent.host.run import run_session
    from voiceagent.session.display import event_sinks
    from voiceagent.stages.loading import load_models
    from voiceagent.metrics import format_barge_ins, format_table
    from voiceagent.transports.device import DeviceTransport

    # The desk: the house is controlled as by serve (local intents, timers, and
    # Home Assistant if homeassistant.url is set), without MQTT or a wake word.
    transport = DeviceTransport(  # a missing device fails now, before the models load
        cfg, args.input_device or cfg.audio.input_device, args.output_device or cfg.audio.output_device,
        retry=False,
    )
    h = cfg.homeassistant
    if h.url:  # an unreadable token file fails now, not after the models have loaded
        cfg.secret(h.token, h.token_file, "homeassistant.token")
    with event_sinks(args.events, session=cfg.serve.name) as (bus, tracker):
        models = load_models(cfg)
        asyncio.run(
            run_session(
                cfg, models, transport, bus, house=True, signals=True, duration=args.duration,
                on_ready=lambda: print("listening; press Ctrl+C to stop", file=sys.stderr),
            )
        )
    print(format_table(tracker.answered()), file=sys.stderr)
    if tracker.barge_ins:
        print(format_barge_ins(tracker.barge_ins), file=sys.stderr)
    return 0


def _cmd_bench(args: argparse.Namespace, cfg: Config) -> int:
    from voiceagent.bench.command import BenchOptions, run_bench

    if cfg.llm.seed is None:
        # Replies are sampled: unseeded, the first one ("I'm sorry for your loss."
        # or "The number 10 is a magical number in mathematics, and ...") set the
        # length of the first clause of every reply after it, and the real
        # recordings' v2v p50 came out 536 or 1340 ms for the same code.
        cfg = cfg.model_copy(update={"llm": cfg.llm.model_copy(update={"seed": args.seed})})
    if args.corpus is not None:
        from voiceagent.bench.real_speech import RealOptions, run_real_bench

        return run_real_bench(cfg, RealOptions(
            Path(args.corpus), json_path=Path(args.json) if args.json else None, peer=args.peer,
            gap_s=args.gap_s if args.gap_s is not None else 8.0,
        ))

    opts = BenchOptions(
        turns=args.turns,
        json_path=Path(args.json) if args.json else None,
        peer=args.peer,
        seed=args.seed,
        gap_s=args.gap_s if args.gap_s is not None else 10.0,
        barge_in_turns=args.barge_in_turns,
    )
    return run_bench(cfg, opts)


def _cmd_models(args: argparse.Namespace) -> int:
    from voiceagent import model_store

    models_dir = _models_dir(args)
    if args.models_command == "pull":
        model_store.pull(models_dir, args.names or None, force=args.force)
        rows = model_store.status(models_dir, verify=False, specs=model_store.ALL_MODELS)
    else:
        rows = model_store.status(models_dir, specs=model_store.ALL_MODELS)
    print(model_store.format_status_table(rows))
    # an optional model that is not installed is no error; a damaged one is
    return 0 if model_store.all_required_installed(rows) else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cfg: Config | None = None
    try:
        if args.command in ("run", "talk", "serve", "demo", "bench"):
            cfg = load_config(args.config)
        _setup_logging(args.verbose, cfg)
        match args.command:
            case "run":
                return _cmd_run(args, cfg)  # type: ignore[arg-type]
            case "talk":
                return _cmd_talk(args, cfg)  # type: ignore[arg-type]
            case "serve":
                from voiceagent.host.serve import ServeOptions, run_serve

                opts = ServeOptions(args.input, args.output, args.events)
                return run_serve(cfg, opts)  # type: ignore[arg-type]
            case "demo":
                from voiceagent.demo import run_demo

                return run_demo(cfg, Path(args.output), args.events)  # type: ignore[arg-type]
            case "bench":
                return _cmd_bench(args, cfg)  # type: ignore[arg-type]
            case "devices":
                from voiceagent.audio.devices import format_device_table, list_devices

                print(format_device_table(list_devices()))
                return 0
            case "models":
                return _cmd_models(args)
    except VoiceAgentError as err:
        print(f"voiceagent: error: {err}", file=sys.stderr)
        return err.exit_code
    except OSError as err:  # a path that cannot be opened, a closed pipe, ...
        print(f"voiceagent: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("voiceagent: interrupted", file=sys.stderr)
        return 130
    return 2

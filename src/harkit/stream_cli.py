"""The body of ``harkit stream``: live activity recognition from a CSV file, stdin or a socket.

The library does the work (:mod:`harkit.inference.streaming`); this module only shows it: one
timeline line per change of the smoothed decision, a live status line on a terminal, and
every window's event as a JSON line in ``--output``.
"""

from __future__ import annotations

import json
import time
from contextlib import closing
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from harkit.errors import DataFormatError, HarkitError

if TYPE_CHECKING:
    from rich.live import Live

    from harkit.inference.streaming import StreamEvent, StreamingPredictor


def format_time(seconds: float) -> str:
    """``mm:ss.ss`` (``h:mm:ss.ss`` from an hour on) of a stream time in seconds.

    Example:
        >>> format_time(2.56), format_time(3725.5)
        ('00:02.56', '1:02:05.50')
    """
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    h, rest = divmod(s, 3600.0)
    m, sec = divmod(rest, 60.0)
    if h >= 1:
        return f"{sign}{int(h)}:{int(m):02d}:{sec:05.2f}"
    return f"{sign}{int(m):02d}:{sec:05.2f}"


class Timeline:
    """Prints the decision timeline to ``console``; on a terminal also a live status line."""

    def __init__(self, console: Console, streamer: StreamingPredictor) -> None:
        self.console = console
        self.streamer = streamer
        self.changes = 0
        self._live: Live | None = None

    def __enter__(self) -> Timeline:
        if self.console.is_terminal:
            from rich.live import Live

            self._live = Live(Text("waiting for the first window ...", style="dim"),
                              console=self.console, refresh_per_second=8, transient=True)
            self._live.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.stop()

    def event(self, ev: StreamEvent) -> None:
        """Show one window's event: a timeline line if the decision changed."""
        if ev.changed:
            self.changes += 1
            style = "yellow" if ev.decision == self.streamer.unknown else "bold green"
            self.console.print(Text.assemble(
                (f"{format_time(ev.timestamp)}  ", "cyan"), (f"{ev.decision:<24}", style),
                f" {ev.decision_confidence:.3f}",
                (f"  window {ev.index}, samples {ev.start}-{ev.end}", "dim")))
        if self._live is not None:
            self._live.update(Text.assemble(
                ("live ", "bold magenta"), (format_time(ev.timestamp), "cyan"),
                "  now ", (ev.decision, "bold"), f" {ev.decision_confidence:.2f}",
                ("  | window: ", "dim"), ev.label, f" {ev.confidence:.2f}",
                (f"  | {ev.index + 1} windows, {self.changes} changes", "dim")))


def stream_command(run: Path, source: str, *, replay: bool, speed: float, hop: int | None,
                   smoothing: str, window_k: int, threshold: float, output: Path | None,
                   console: Console, nan: str = "raise", gaps: str = "keep",
                   disorder: str = "keep", max_fill: int | None = None,
                   gap_factor: float = 2.0, time_column: str | None = None) -> int:
    """Stream ``source`` through the run's model; returns the exit status (130: interrupted).

    Args:
        run: run directory (or a checkpoint ``.pt`` file).
        source: a CSV file, ``-`` for stdin or ``tcp://host:port`` (CSV lines, header first).
        replay: replay at the recording's sampling rate times ``speed``.
        hop: samples between windows (None: as in training).
        smoothing, window_k, threshold: see :class:`~harkit.inference.streaming.StreamingPredictor`
            (``window_k`` is its ``k``).
        output: JSON lines file for every window's event (None: not written).
        console: where the timeline goes.
        nan, gaps, disorder, max_fill, gap_factor: the hostile-stream policies (see
            :mod:`harkit.inference.streaming`); ``gaps`` and ``disorder`` need timestamps.
        time_column: the CSV column holding each sample's time in seconds.

    Raises:
        HarkitError: bad options, an unreadable run, source or sample (naming it).
    """
    from harkit.inference.streaming import (
        StreamingPredictor,
        check_policy_options,
        check_stream_options,
        open_timed_source,
        paced,
    )

    check_stream_options(smoothing, window_k, 0.1, threshold)
    check_policy_options(gaps, nan, disorder, gap_factor, max_fill)
    if time_column is None and (gaps != "keep" or disorder != "keep"):
        raise HarkitError(f"--gaps {gaps} / --disorder {disorder} need the samples' times: "
                          "name their CSV column with --time-column")
    if not (np.isfinite(speed) and speed > 0):
        raise HarkitError(f"--speed {speed!r}: expected a positive replay speed factor")
    if source != "-" and not source.startswith("tcp://") and not Path(source).is_file():
        raise DataFormatError(source, "file not found")  # before the model is loaded
    streamer = StreamingPredictor.from_run(run, hop=hop, smoothing=smoothing, k=window_k,
                                           threshold=threshold, source=source, nan=nan,
                                           gaps=gaps, disorder=disorder, max_fill=max_fill,
                                           gap_factor=gap_factor)
    w, rate = streamer.window_len, streamer.sampling_rate
    console.print(f"[bold]harkit stream[/] {escape(source)}: windows of {w} samples "
                  f"({w / rate:.2f} s) every {streamer.hop} samples ({streamer.hop / rate:.2f} s)"
                  f", smoothing {smoothing}" + (f" (k={window_k})" if smoothing != "none" else "")
                  + (f", unknown below {threshold:.2f}" if threshold > 0 else ""),
                  highlight=False, soft_wrap=True)
    timed = open_timed_source(source, streamer.channels, block_rows=max(streamer.hop, 256),
                              time_column=time_column, allow_missing=nan == "repair")
    n_ch = len(streamer.channels)
    # samples and their times in one float64 array (n, C + 1), so replay can pace it
    chunks = (np.column_stack([x.astype(np.float64),
                               np.full(len(x), np.nan) if t is None else t]) for x, t in timed)
    if replay:
        chunks = paced(chunks, rate, speed)
    per_window: list[float] = []
    out: IO[str] | None = None
    if output is not None:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            out = open(output, "w", encoding="utf-8")  # noqa: SIM115  (closed below)
        except OSError as e:
            raise HarkitError(f"--output {output}: cannot write ({e.strerror or e})") from None
    status = 0
    timeline = Timeline(console, streamer)
    try:
        with closing(timed), closing(chunks), timeline:
            for chunk in chunks:
                t0 = time.perf_counter()
                events = streamer.feed(chunk[:, :n_ch].astype(np.float32),
                                       None if time_column is None else chunk[:, n_ch])
                if events:
                    per_window.append((time.perf_counter() - t0) / len(events))
                for ev in events:
                    timeline.event(ev)
                    if out is not None:
                        out.write(json.dumps(ev.to_dict(streamer.classes)) + "\n")
                if out is not None and events:
                    out.flush()  # a reader following the file sees each window at once
    except KeyboardInterrupt:
        status = 130
    finally:
        if out is not None:
            out.close()
    summary = (f"{'interrupted' if status else 'end of stream'}: {streamer.n_samples:,} samples, "
               f"{streamer.n_windows:,} windows, {timeline.changes} changes of activity")
    repairs = {k: v for k, v in streamer.stats.items() if v}
    if repairs:
        summary += "; hostile input: " + ", ".join(f"{k} {v:,}" for k, v in repairs.items())
    if per_window:
        summary += f"; {1000 * float(np.median(per_window)):.2f} ms per window (median)"
    if output is not None:
        summary += f"; events in {escape(str(output))}"
    console.print(summary, highlight=False, soft_wrap=True)
    return status

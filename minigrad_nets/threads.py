"""How many BLAS threads training uses: a fixed count, or ``'auto'`` (the default): the cores others leave idle.

Why: at this library's matrix sizes a product split over two BLAS threads
waits for both, and when another process holds a core the wait is a
scheduler time slice. On a 2-core machine with busy neighbours, two threads
made the quick experiments and ``fit`` many times slower than one thread
(benchmarks/contention.py); on a quiet machine two threads are faster.
``'auto'`` gets both: during ``fit`` it looks every ``AUTO_INTERVAL`` seconds
at how much CPU other processes used since the last look (/proc/stat minus
this process's own CPU time) and runs BLAS on the cores they left idle, at
least one, at most BLAS's own default (all cores, or OPENBLAS_NUM_THREADS).
Until its first look it runs one thread: a wrong guess of one costs ≈1.4x
for 50 ms, a wrong guess of all cores costs 10x or more.

The setting, first found wins: ``set_threads()`` (the CLI's ``--threads``),
the environment variable ``MINIGRAD_NETS_THREADS`` (a count or ``auto``),
``'auto'``. Thread counts are set with threadpoolctl (the ``threads`` extra);
without it BLAS keeps its own count, and an explicit setting warns once.
``'auto'`` adapts on Linux only (elsewhere it keeps BLAS's default).
"""
import contextlib
import os
import time
import warnings

ENV_VAR = "MINIGRAD_NETS_THREADS"
AUTO = "auto"
AUTO_INTERVAL = 0.5  # seconds between looks at the machine's load; the first look comes after AUTO_FIRST_LOOK
AUTO_FIRST_LOOK = 0.05  # five 10 ms ticks of /proc/stat per CPU: enough to tell a busy core from an idle one
BUSY_CORE = 0.3  # others using this much of a core or more (over a look's interval) count as holding it

REMEMBER = 5.0  # seconds for which the last 'auto' choice carries over to the next fit (experiments run several)

_chosen = None  # set_threads(): wins over the environment variable
_warned = False
_controller = None
_last_choice = (float("-inf"), None)  # (perf_counter time, threads) of the last 'auto' look
_last_sample = None  # the last look's reading of the machine: the next look measures from it


def parse(value, name=ENV_VAR):
    """``'auto'`` or a positive int from ``value`` (an int or a string such as '2' or 'auto'); ValueError otherwise."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == AUTO:
            return AUTO
        if text.isdigit() and int(text) > 0:
            return int(text)
    elif isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ValueError(f"{name} must be a positive number of threads or 'auto', got {value!r}")


def set_threads(value):
    """Fix the setting for this process (``None``: back to the environment variable / 'auto'); returns it."""
    global _chosen
    _chosen = None if value is None else parse(value, "threads")
    return setting()


def setting():
    """The setting in force: a positive int, or 'auto'."""
    if _chosen is not None:
        return _chosen
    value = os.environ.get(ENV_VAR, "").strip()
    return parse(value) if value else AUTO


def _blas_controller():
    """threadpoolctl's controller of the BLAS libraries loaded in this process, or None without threadpoolctl."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    global _controller
    if _controller is None:
        import numpy  # noqa: F401  (its BLAS must be loaded for threadpoolctl to find it)
        _controller = ThreadpoolController().select(user_api="blas")
    return _controller


class _Fixed:
    """A fixed thread count: nothing to do per iteration."""
    threads = None

    def tick(self):
        pass


class _Auto:
    """Every ``AUTO_INTERVAL`` s: the cores other processes left idle since the last look become BLAS's threads."""

    def __init__(self, controller, most):
        self.controller, self.most = controller, most
        self.cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        self.ticks_per_second = os.sysconf("SC_CLK_TCK")
        self.threads = most
        when, threads = _last_choice
        remembered = threads is not None and time.perf_counter() - when < REMEMBER
        self._use(min(threads, most) if remembered else 1)
        self.next_look = time.perf_counter() + AUTO_FIRST_LOOK
        # A reading taken earlier (the CLI takes one at start, before loading data) allows a look right away.
        if _last_sample is not None and time.perf_counter() - _last_sample[0] >= AUTO_FIRST_LOOK / 2:
            self._look()
        elif _last_sample is None:
            self._look()

    def _use(self, threads):
        global _last_choice
        _last_choice = (time.perf_counter(), threads)
        if threads != self.threads:
            self.threads = threads
            for lib in self.controller.lib_controllers:
                lib.set_num_threads(threads)

    def _sample(self):
        """(wall s, busy CPU s of our CPUs, this process's CPU s), or None where /proc/stat cannot be read."""
        if self.cpus is None:
            return None
        wanted = {f"cpu{i}" for i in self.cpus}
        busy = 0
        try:
            with open("/proc/stat") as f:
                for line in f:
                    fields = line.split()
                    if fields and fields[0] in wanted:
                        ticks = [int(v) for v in fields[1:8]]  # user nice system idle iowait irq softirq
                        busy += sum(ticks) - ticks[3] - ticks[4]
        except (OSError, ValueError):
            return None
        own = os.times()
        return time.perf_counter(), busy / self.ticks_per_second, own.user + own.system

    def tick(self):
        """Called every iteration: cheap unless a look is due."""
        if time.perf_counter() >= self.next_look:
            self._look()

    def _look(self):
        """Read the machine; if there is an earlier reading, use the cores others left idle since then."""
        global _last_sample
        now, last = self._sample(), _last_sample
        _last_sample = now
        self.next_look = time.perf_counter() + AUTO_INTERVAL
        if now is None or last is None or now[0] <= last[0]:
            return
        others = ((now[1] - last[1]) - (now[2] - last[2])) / (now[0] - last[0])  # cores
        held = int(max(others, 0.0) + (1 - BUSY_CORE))  # cores other processes hold
        self._use(max(1, min(self.most, len(self.cpus) - held)))


@contextlib.contextmanager
def training_threads(value=None):
    """Within: BLAS threads as ``value`` (default: ``setting()``) says; yields an object whose ``tick()``
    ``fit`` calls every iteration (it adapts the count under 'auto'). Restores the previous counts on exit."""
    global _warned
    value = setting() if value is None else parse(value, "threads")
    controller = _blas_controller()
    if controller is None or not controller.lib_controllers:
        if not _warned and (value != AUTO or _chosen is not None or os.environ.get(ENV_VAR)):
            warnings.warn(f"threads={value} has no effect: threadpoolctl is not installed "
                          f"(pip install 'minigrad-nets[threads]'), so BLAS keeps its own thread count",
                          RuntimeWarning, stacklevel=3)
            _warned = True
        yield _Fixed()
        return
    with controller.limit(limits=value if value != AUTO else None):
        if value != AUTO:
            yield _Fixed()
            return
        most = max(lib.num_threads for lib in controller.lib_controllers)
        yield _Auto(controller, most)

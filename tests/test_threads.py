"""How many threads a run takes: the cores free to it, or what the recipe or command line says."""
import pytest
import torch
from click.testing import CliRunner

from mmbind import threads


@pytest.fixture
def machine(monkeypatch):
    """A fake machine: set its usable cores, total cores and busy cores (the load)."""
    def set_machine(usable: int, cpus: int, load: float, omp: str | None = None):
        monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(usable)))
        monkeypatch.setattr(threads.os, "cpu_count", lambda: cpus)
        monkeypatch.setattr(threads, "busy_cores", lambda: load)
        monkeypatch.setattr(threads, "CGROUP_CPU_MAX", threads.Path("/nonexistent/cpu.max"))
        if omp is None:
            monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        else:
            monkeypatch.setenv("OMP_NUM_THREADS", omp)
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
        threads.free_cores.cache_clear()

    yield set_machine
    threads.free_cores.cache_clear()


def test_the_default_counts_the_cores_the_load_leaves_free(machine):
    machine(usable=2, cpus=2, load=0.2)
    assert threads.resolve_threads(0) == 2
    machine(usable=2, cpus=2, load=1.1)  # one other busy process: one core left
    assert threads.resolve_threads(0) == 1
    machine(usable=2, cpus=2, load=7.0)  # an overloaded machine still gets one thread
    assert threads.resolve_threads(0) == 1
    machine(usable=4, cpus=16, load=3.0)  # the affinity caps it
    assert threads.resolve_threads(0) == 4


def test_explicit_settings_win_over_the_default(machine, monkeypatch):
    machine(usable=8, cpus=8, load=0.0, omp="3")
    assert threads.resolve_threads(0) == 3
    assert threads.resolve_threads(5) == 5
    machine(usable=8, cpus=8, load=0.0)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun's processes share the machine
    assert threads.resolve_threads(0) == 2
    with pytest.raises(ValueError, match="threads must be >= 0"):
        threads.resolve_threads(-1)


def test_busy_cores_reads_the_machines_busy_share_from_proc_stat(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal: 300 of 400 jiffies busy over the window
    stat.write_text("cpu  1000 0 0 5000 0 0 0 0 0 0\ncpu0 ...\n")
    monkeypatch.setattr(threads, "PROC_STAT", stat)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(threads.time, "sleep", lambda s: stat.write_text("cpu  1250 0 50 5080 20 0 0 0 0 0\n"))
    assert threads.busy_cores() == pytest.approx(3.0)
    monkeypatch.setattr(threads, "PROC_STAT", tmp_path / "missing")  # not Linux: the load average decides
    assert threads.busy_cores() is None
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(4)))
    monkeypatch.setattr(threads, "CGROUP_CPU_MAX", tmp_path / "no-cpu.max")  # no quota caps the 4 cores
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (2.2, 2.0, 1.0))
    threads.free_cores.cache_clear()
    try:
        assert threads.free_cores() == 2
    finally:
        threads.free_cores.cache_clear()


def test_apply_threads_sets_torchs_intra_op_threads(machine):
    before = torch.get_num_threads()
    try:
        machine(usable=4, cpus=4, load=1.2)
        assert threads.apply_threads(3) == 3 and torch.get_num_threads() == 3
        assert threads.apply_threads(0) == 3 and torch.get_num_threads() == 3  # the free cores
    finally:
        torch.set_num_threads(before)


def test_threads_is_a_recipe_field_and_a_command_line_option(toy_plugin, tmp_path, monkeypatch):
    from mmbind.cli import _register_builtin_commands, cli
    from mmbind.recipe import RecipeError, load_recipe
    from test_recipe import recipe_text

    path = tmp_path / "r.toml"
    path.write_text("threads = 3\n" + recipe_text(toy_plugin, tmp_path))
    assert load_recipe(path).threads == 3
    with pytest.raises(RecipeError, match="threads: expected an integer >= 0"):
        load_recipe(path, {"threads": -2})
    seen = {}
    monkeypatch.setattr("mmbind.pipeline.train_recipe", lambda recipe, **kwargs: seen.update(threads=recipe.threads))
    _register_builtin_commands()
    result = CliRunner().invoke(cli, ["train", str(path), "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert seen == {"threads": 1}

"""The compress recipes and the mechanisms they choose between: warm start from the baseline,
a ramped MACs target, KD fine-tuning; and `--recipe paper` staying the authors' recipe."""

import pytest

from pdd_edge import config, pipeline
from pdd_edge.artifact import RunDir
from pdd_edge.data.options import DataConfig
from pdd_edge.errors import PddError
from pdd_edge.nn.constraint import MacsConstraint
from pdd_edge.stages import distill, finetune, latency, prune


def cfg_for(recipe=None, dataset="digits", **overrides):
    base = config.from_recipe(recipe, student="resnet20", teacher="resnet56", data=DataConfig(name=dataset))
    return config.resolve(base, **overrides)


def test_constraint_ramp_aims_at_a_growing_share_of_the_target_then_the_target():
    constraint = MacsConstraint(0.6, dense_macs=100, input_hw=(32, 32), ramp_epochs=3)
    assert [round(constraint.target_at(e), 6) for e in range(5)] == [0.2, 0.4, 0.6, 0.6, 0.6]
    assert MacsConstraint(0.6, 100, (32, 32)).target_at(0) == 0.6  # no ramp: the target from the first step


def test_constraint_error_is_measured_against_the_ramped_target():
    from pdd_edge import zoo
    from pdd_edge.zoo.masked import MaskedNetwork

    model = zoo.build("resnet20")
    MaskedNetwork.attach(model, "open")  # every channel open: relative MACs 1.0
    constraint = MacsConstraint(0.5, dense_macs=int(model.cost(model.mask_points(), (32, 32)).macs), input_hw=(32, 32),
                        ramp_epochs=2, gain=1.0, rate=0.0)
    constraint.on_epoch_start(0, lr=0.1, base_lr=0.1)
    assert float(constraint(model)["lambda"]) == pytest.approx(1.0 - (1 - 0.25))  # epoch 1 aims at -25 %
    constraint.on_epoch_start(1, lr=0.1, base_lr=0.1)
    assert float(constraint(model)["lambda"]) == pytest.approx(1.0 - (1 - 0.5))


def test_paper_recipe_is_the_authors_recipe():
    cfg = cfg_for("paper")
    assert (cfg.warm_start, cfg.target_macs_reduction, cfg.finetune_kd) == (False, None, False)
    assert (cfg.distill_epochs, cfg.finetune_epochs, cfg.lr, cfg.finetune_lr, cfg.batch_size) == (50, 150, 0.01, 0.01, 256)
    d = distill.config(RunDir("run"), cfg)
    assert d.student_weights is None and d.mask_init is None and d.target_macs_reduction is None  # scratch, N(0, 1e-3)
    assert finetune.config(RunDir("run"), cfg).teacher_weights is None  # plain CE


def test_warm_started_recipes_train_on_a_cosine_schedule_and_paper_keeps_the_steps():
    run = RunDir("run")
    for recipe in ("quick", "standard"):
        cfg = cfg_for(recipe)
        optims = [distill.config(run, cfg).optim, distill.config(run, cfg, masks=False, epochs=10).optim,
                  finetune.config(run, cfg).optim]
        assert [(o.schedule, o.milestones) for o in optims] == [("cosine", ())] * 3  # KD student, distill, finetune
    paper = cfg_for("paper")
    assert (distill.config(run, paper).optim.schedule, distill.config(run, paper).optim.milestones) == ("step", (20, 40))
    assert finetune.config(run, paper).optim.milestones == (50, 100)
    assert cfg_for("paper", lr_schedule="cosine").lr_schedule == "cosine"  # the option overrides the recipe


def test_the_schedule_is_part_of_the_training_stages_hashes():
    step, cosine = pipeline.stage_hashes(cfg_for("paper")), pipeline.stage_hashes(cfg_for("paper", lr_schedule="cosine"))
    changed = {name for name in step if step[name] != cosine[name]}
    assert {"baseline", "distill", "finetune"} <= changed and "teacher" not in changed


def test_warm_started_distill_and_finetune_start_at_a_fifth_of_the_lr_and_the_baseline_at_the_lr():
    run = RunDir("run")
    quick = cfg_for("quick", lr=0.05, finetune_lr=0.04)
    assert quick.warm_lr_scale == 0.2 and cfg_for("standard").warm_lr_scale == 0.2
    assert distill.config(run, quick).optim.lr == pytest.approx(0.01)
    assert finetune.config(run, quick).optim.lr == pytest.approx(0.008)
    assert distill.config(run, quick, masks=False, epochs=10).optim.lr == 0.05  # the KD student: from scratch
    scratch = config.resolve(quick, warm_start=False)  # nothing to continue: the lrs as given
    assert (distill.config(run, scratch).optim.lr, finetune.config(run, scratch).optim.lr) == (0.05, 0.04)
    paper = cfg_for("paper", warm_start=True)  # the paper's recipe keeps its lrs even warm-started
    assert paper.warm_lr_scale == 1.0 and distill.config(run, paper).optim.lr == paper.lr


def test_the_warm_lr_scale_is_part_of_the_distill_and_finetune_hashes_only():
    a, b = pipeline.stage_hashes(cfg_for("quick")), pipeline.stage_hashes(cfg_for("quick", warm_lr_scale=0.5))
    assert {name for name in a if a[name] != b[name]} >= {"distill", "finetune"}
    assert a["teacher"] == b["teacher"] and a["baseline"] == b["baseline"]


def test_warm_start_distills_from_the_baseline_with_open_masks():
    run = RunDir("run")
    d = distill.config(run, cfg_for("paper", warm_start=True))
    assert d.student_weights == str(run.best("baseline")) and d.mask_init == "open"
    assert distill.config(run, cfg_for("paper", warm_start=True), masks=False).student_weights is None  # the baseline itself


def test_budget_ramp_is_a_share_of_the_distill_epochs():
    d = distill.config(RunDir("run"), cfg_for("paper", target_macs_reduction=0.5, budget_ramp=0.5, distill_epochs=6))
    assert d.budget_ramp_epochs == 3 and d.target_macs_reduction == 0.5


def test_finetune_kd_uses_the_runs_teacher():
    run = RunDir("run")
    f = finetune.config(run, cfg_for("paper", finetune_kd=True))
    assert f.teacher_weights == str(run.teacher()) and f.teacher == "resnet56"


def test_warm_start_makes_distill_depend_on_the_baseline():
    scratch, warm = cfg_for("paper"), cfg_for("paper", warm_start=True)
    more = config.resolve(warm, finetune_epochs=warm.finetune_epochs + 1)  # changes the baseline
    assert pipeline.stage_hashes(scratch)["distill"] == pipeline.stage_hashes(
        config.resolve(scratch, finetune_epochs=scratch.finetune_epochs + 1))["distill"]
    assert pipeline.stage_hashes(warm)["distill"] != pipeline.stage_hashes(more)["distill"]


def test_masks_train_at_the_multiple_prune_deploys_and_retrain_when_it_changes(tmp_path):
    target = tmp_path / "board.toml"
    target.write_text('name = "board"\narch = "aarch64"\nchannel_multiple = 8\n')
    run = RunDir("run")
    macs = cfg_for("paper", target_macs_reduction=0.5, targets=[str(target)])
    assert distill.config(run, macs).round_to == 8  # the first target's declared multiple
    assert prune.config(run, macs).round_to is None  # prune reads it from the distilled checkpoint
    assert distill.config(run, config.resolve(macs, round_to=4)).round_to == 4
    pure = cfg_for("paper", targets=[str(target)])  # pure PDD: raw masks, rounded by prune to the target's multiple
    assert prune.config(run, pure).round_to == 8
    speed = cfg_for("quick")  # a speed target on local, which declares no multiple: the latency table's
    assert distill.config(run, speed).round_to is None
    a, b = pipeline.stage_hashes(macs), pipeline.stage_hashes(config.resolve(macs, round_to=4))
    assert a["teacher"] == b["teacher"] and a["baseline"] == b["baseline"]
    assert all(a[s] != b[s] for s in ("distill", "prune", "finetune"))


def test_student_builder_arguments_retrain_everything_the_student_is_in():
    plain = cfg_for("paper")
    staged = config.resolve(plain, student_args={"mask_placement": "stage"})
    a, b = pipeline.stage_hashes(plain), pipeline.stage_hashes(staged)
    assert a["teacher"] == b["teacher"]  # the teacher does not depend on the student
    assert all(a[s] != b[s] for s in ("baseline", "distill", "prune", "finetune", "export", "report"))


def test_warm_started_recipes_aim_at_a_2x_speedup_fine_tune_with_kd_and_fall_back_to_half_the_macs():
    for recipe in ("quick", "standard"):
        cfg = cfg_for(recipe)
        assert (cfg.target_speedup, cfg.target_latency_ms, cfg.target_macs_reduction) == (2.0, None, None)
        assert cfg.speed_fallback_macs == 0.6 and cfg.finetune_kd
        f = finetune.config(RunDir("run"), cfg)
        assert f.teacher_weights == str(RunDir("run").teacher())
        assert list(pipeline.stage_hashes(cfg))[:2] == ["latency", "teacher"]  # the table comes first
        d = distill.config(RunDir("run"), cfg)
        assert d.target_macs_reduction is None and d.target_speedup == 2.0
        assert d.latency_table == str(RunDir("run").latency_table()) and d.budget_ramp_epochs > 0
    paper = cfg_for("paper")
    assert (paper.target_speedup, paper.speed_fallback_macs) == (None, None) and "latency" not in pipeline.stage_hashes(paper)


def test_latency_target_adds_the_latency_stage_before_distill_and_a_macs_target_drops_it():
    cfg = config.with_objective(cfg_for("paper"), speedup=2.0)
    assert list(pipeline.stage_hashes(cfg))[0] == "latency"
    assert "latency" not in pipeline.stage_hashes(config.with_objective(cfg_for("quick"), macs=0.5))


def test_a_budget_on_the_command_line_replaces_the_recipe_objective_and_two_are_refused():
    speed = config.with_objective(cfg_for("standard"), speedup=1.5)
    assert (speed.target_macs_reduction, speed.target_speedup, speed.speed_fallback_macs) == (None, 1.5, None)
    macs = config.with_objective(speed, macs=0.3)
    assert (macs.target_macs_reduction, macs.target_speedup) == (0.3, None)
    assert "latency" not in pipeline.stage_hashes(macs)
    ms = config.with_objective(cfg_for("paper"), latency_ms=0.3)
    assert (ms.target_macs_reduction, ms.target_latency_ms, ms.target_speedup) == (None, 0.3, None)
    assert config.with_objective(cfg_for("quick")) == cfg_for("quick")
    with pytest.raises(PddError, match="give one budget, not --target-macs-reduction and --target-speedup"):
        config.with_objective(cfg_for("quick"), macs=0.5, speedup=2.0)


def _table_of(speedup_floor, check_error_pct=0.0):
    """A `table_of` for `latency.objective`: a synthetic ResNet20 table whose thinnest network is
    `speedup_floor` times faster than the full one (no measurement)."""
    from pdd_edge import zoo
    from tests.latency.synthetic import synthetic_table

    model = zoo.build("resnet20")
    table = synthetic_table(model)
    table.key["target"] = "local"
    dense = float(table.predict(model.layer_widths(model.mask_points())))
    table.record["floor"] = {"measured_ms": dense / speedup_floor, "predicted_ms": 0.0}
    table.record["error"] = {"check_max_abs_pct": check_error_pct, "check_mean_abs_pct": check_error_pct / 2}
    return lambda cfg: (table, 10)


def test_default_speed_target_on_another_machines_target_becomes_the_macs_fallback_and_says_so():
    rpi = cfg_for("quick", targets=("rpi4",))  # an aarch64 board: its latency cannot be measured on this x86 machine
    fallback, note = latency.objective(rpi, table_of=lambda cfg: pytest.fail("no table is measured for another machine"))
    assert (fallback.target_speedup, fallback.target_macs_reduction) == (None, 0.6)
    # exactly the run an explicit --target-macs-reduction 0.6 makes: same stages, same hashes
    assert pipeline.stage_hashes(fallback) == pipeline.stage_hashes(config.with_objective(rpi, macs=0.6))
    assert note.startswith("the recipe's speed target (--target-speedup 2 on rpi4) needs rpi4's latency table")
    assert "pruning to a 60 % MACs target instead" in note and "--latency-table T.json" in note
    given = config.resolve(rpi, latency_table="t.json")  # a table made on the board: the speed target stays
    assert latency.objective(given, table_of=_table_of(4.0)) == (given, None)
    asked = config.with_objective(rpi, speedup=1.9)  # the user's own request is never swapped: refused later
    assert latency.objective(asked) == (asked, None)
    with pytest.raises(PddError, match="make the table on the device"):
        latency.validate(asked)


def test_default_speed_target_stays_where_it_is_reachable_and_gives_way_where_it_is_not():
    local = cfg_for("quick")
    assert latency.objective(local, table_of=_table_of(4.0)) == (local, None)  # 2x of at most 4x
    fallback, note = latency.objective(local, table_of=_table_of(1.5))  # a network already too small for 2x
    assert fallback == latency.fallback(local) and fallback.target_macs_reduction == 0.6
    assert note.startswith("the recipe's --target-speedup 2 is out of reach on local: the best the student's "
                           "structures can reach is ")
    assert note.endswith("ask for at most a 1.50x speed-up; pruning to a 60 % MACs target instead")
    asked = config.with_objective(local, speedup=1.9)  # asked for by the user: kept, and refused by the latency stage
    assert latency.objective(asked, table_of=_table_of(1.5)) == (asked, None)


def test_a_resumed_default_run_keeps_the_objective_it_started_with_without_measuring_again():
    local = cfg_for("quick")
    never = lambda cfg: pytest.fail("a resumed run measures no table to decide its objective")  # noqa: E731
    fell_back = {"target_speedup": None, "target_macs_reduction": 0.6, "speed_fallback_macs": 0.6}
    decided, note = latency.objective(local, table_of=never, started=fell_back)
    assert decided == latency.fallback(local) and note.startswith("resuming a run that fell back")
    kept = {"target_speedup": 2.0, "target_macs_reduction": None, "speed_fallback_macs": 0.6}
    assert latency.objective(local, table_of=never, started=kept) == (local, None)
    # a run begun with the user's own budget decided nothing: the recipe's objective is decided afresh
    assert latency.objective(local, table_of=_table_of(4.0), started={**fell_back, "speed_fallback_macs": None}) == (
        local, None)


def test_default_speed_target_gives_way_where_the_latency_table_misses_its_check_networks_by_over_5_percent():
    local = cfg_for("quick")
    assert latency.objective(local, table_of=_table_of(4.0, check_error_pct=5.0)) == (local, None)  # at the ceiling
    fallback, note = latency.objective(local, table_of=_table_of(4.0, check_error_pct=8.5))
    assert fallback == latency.fallback(local)
    assert note.startswith("the latency table of resnet20 on local is off by up to 8.5 % on its check networks (more "
                           "than 5 %), too far to price the recipe's speed target (--target-speedup 2): pruning to a "
                           "60 % MACs target instead.")
    asked = config.with_objective(local, speedup=1.9)  # the user's own request: kept whatever the table's error
    assert latency.objective(asked, table_of=_table_of(4.0, check_error_pct=22.0)) == (asked, None)
    given = config.resolve(local, latency_table="t.json")  # a given table too noisy: the MACs run drops it
    fallback, _ = latency.objective(given, table_of=_table_of(4.0, check_error_pct=22.0))
    assert fallback.latency_table is None and fallback.target_macs_reduction == 0.6
    latency.validate(fallback)  # no "--latency-table is for a latency target": the run goes on


@pytest.mark.parametrize("overrides, message", [
    ({"budget_ramp": 1.5, "target_macs_reduction": 0.5}, "--budget-ramp is a share of the distill epochs"),
    ({"target_macs_reduction": 1.2}, "--target-macs-reduction must be between 0 and 1"),
    ({"distill_epochs": 0}, "distill stage: epochs must be at least 1"),
    ({"lr_schedule": "linear"}, "unknown learning-rate schedule \\(--lr-schedule\\) 'linear'"),
    ({"warm_lr_scale": 0.0}, "--warm-lr-scale is a share of --lr and --finetune-lr, above 0 and at most 1"),
    ({"warm_lr_scale": 1.5, "warm_start": True}, "--warm-lr-scale is a share of --lr and --finetune-lr"),
    ({"warm_lr_scale": float("nan")}, "--warm-lr-scale is a share of --lr and --finetune-lr"),
])
def test_compress_options_are_validated_before_any_work(tmp_path, overrides, message):
    with pytest.raises(PddError, match=message):
        pipeline.validate(cfg_for("paper", **overrides), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_distill_budget_ramp_longer_than_the_distillation_is_refused():
    with pytest.raises(PddError, match="budget ramp must be between 0 and 6 epochs"):
        distill.DistillConfig(student="resnet20", teacher_weights="t.pt", target_macs_reduction=0.5,
                              budget_ramp_epochs=7, optim=distill.default_optim(6))
    with pytest.raises(PddError, match="needs a target: add --target-macs-reduction"):
        distill.DistillConfig(student="resnet20", teacher_weights="t.pt", budget_ramp_epochs=2,
                              optim=distill.default_optim(6))


@pytest.mark.parametrize("args, message", [
    (["compress", "--budget-ramp", "2"], "--budget-ramp is a share of the distill epochs"),
    (["compress", "--target-macs-reduction", "1.5"], "--target-macs-reduction must be between 0 and 1"),
    (["compress", "--warm-lr-scale", "-0.2"], "--warm-lr-scale is a share of --lr and --finetune-lr"),
    (["compress", "--warm-lr-scale", "2"], "--warm-lr-scale is a share of --lr and --finetune-lr"),
    (["distill", "--student", "resnet20", "--teacher-weights", "t.pt", "--epochs", "4", "--target-macs-reduction", "0.5",
      "--budget-ramp-epochs", "9"], "budget ramp must be between 0 and 4 epochs"),
    (["prune", "d.pt", "--min-macs-reduction", "1.5"], "--min-macs-reduction must be between 0 and 1"),
])
def test_recipe_options_out_of_range_are_usage_errors_that_write_nothing(tmp_path, monkeypatch, args, message):
    from tests.helpers import run_cli

    monkeypatch.chdir(tmp_path)
    result = run_cli(*args, "--out", tmp_path / "out")
    assert result.exit_code == 2 and message in result.stderr
    assert list(tmp_path.iterdir()) == []

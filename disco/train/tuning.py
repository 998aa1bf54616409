"""Optional Keras Tuner search (``disco train --tune``): a small random search over learning rate,
L2 and dropout for the chosen model, scored by masked validation mAP; the best values then train
the final model like any other run."""

from __future__ import annotations

import logging
import os

from disco import params

log = logging.getLogger(__name__)


def tune_hyperparameters(fs, *, base: dict, out_dir: str, seed: int, trials: int = 6) -> dict:
    import keras

    from disco.extras import require

    kt = require("keras_tuner", feature="disco train --tune")

    from disco.metrics import mean_ap
    from disco.runinfo import seed_everything
    from disco.train.losses import MaskedBinaryCrossentropy, pack_targets
    from disco.train.models import build_model

    train = fs.splits[params.SPLIT_TRAIN]
    val = fs.splits[params.SPLIT_VALIDATION].originals()
    flat = train.x.reshape(-1, fs.dim)
    mean, var = flat.mean(0), flat.var(0) + 1e-6

    class MAPTuner(kt.RandomSearch):
        def run_trial(self, trial, *args, **kwargs):
            hp = trial.hyperparameters
            # The tuner's seed draws the hyperparameters only; each trial's initial weights, dropout
            # and shuffling must be seeded too, or a rerun can score the trials apart and keep others.
            trial_seed = seed + 1 + len(self.oracle.trials)
            seed_everything(trial_seed)
            net = build_model(
                base["model"],
                frames=fs.frames,
                dim=fs.dim,
                dropout=hp.Float("dropout", 0.1, 0.6),
                l2=hp.Float("l2", 1e-5, 1e-2, sampling="log"),
                mean=mean,
                variance=var,
                seed=trial_seed,
            )
            net.compile(
                optimizer=keras.optimizers.Adam(hp.Float("learning_rate", 1e-4, 3e-3, sampling="log")),
                loss=MaskedBinaryCrossentropy(),
                steps_per_execution=params.STEPS_PER_EXECUTION,
            )
            net.fit(
                train.x,
                pack_targets(train.y_true, train.y_mask),
                batch_size=base["batch_size"],
                epochs=min(base["epochs"], 30),
                verbose=0,
                shuffle=True,
            )
            score = mean_ap(val.y_true, net.predict(val.x, verbose=0), val.y_mask)
            log.info("tuning trial %s: val mAP %.4f", trial.trial_id, score)
            return {"val_mAP": score}

    tuner = MAPTuner(
        objective=kt.Objective("val_mAP", direction="max"),
        max_trials=trials,
        seed=seed,
        directory=os.path.join(out_dir, "tuning"),
        project_name=base["model"],
        overwrite=True,
    )
    tuner.search()
    best = tuner.get_best_hyperparameters(1)[0].values
    log.info("tuning: best %s", best)
    return {k: float(v) for k, v in best.items()}

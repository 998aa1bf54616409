"""The one source of disco's constants and record schemas.

Every step (data layer, resample, augment, embed, train, evaluate, the KFP components) imports
its sample rate, clip length, class list, split names and TFRecord feature names from here,
in the way VGGish's reference code keeps everything in ``vggish_params.py``. Changing a
schema means bumping its version, so a step can refuse records written by an incompatible
producer instead of silently misreading them. A feature that readers default when it is absent
(``group``, ``partner_group``) is compatible both ways and keeps the version: a reader of this
version takes an older record's group from its key, and an older reader ignores the feature.

Schemas (all records are ``tf.train.Example`` protos in sharded TFRecord files):

Resampled audio, version ``RESAMPLED_SCHEMA_VERSION`` (written by resample and augment):

=====================  ==========  ===================================================
feature                type        meaning
=====================  ==========  ===================================================
``key``                bytes       OpenMIC sample key, e.g. ``000046_3840``
``split``              bytes       one of ``SPLITS``
``pcm``                bytes       mono PCM, signed 16-bit little endian, exactly
                                   ``CLIP_SAMPLES`` samples (padded with zeros or
                                   trimmed)
``sample_rate``        int64       always ``SAMPLE_RATE``
``num_samples``        int64       samples in ``pcm`` (== ``CLIP_SAMPLES``)
``original_duration``  float       seconds of audio before padding or trimming
``augmentation_id``    int64       0 for the original clip, 1..K for augmented copies
``y_true``             float[20]   relevance per class (``CLASSES`` order); 0 if masked
``y_mask``             int64[20]   1 where the class was annotated for this clip
``group``              bytes       the clip's cross-validation group
                                   (``records.clip_group``): ``artist:<id>`` where
                                   the metadata knows the artist, else
                                   ``track:<track>``; absent: from the key
``partner_group``      bytes       a mixup mixture's second clip's group; empty for
                                   every other record (absent: empty)
``schema_version``     int64       ``RESAMPLED_SCHEMA_VERSION``
=====================  ==========  ===================================================

Embeddings, version ``EMBEDDING_SCHEMA_VERSION`` (written by embed, read by train/evaluate):

=====================  ==========  ===================================================
feature                type        meaning
=====================  ==========  ===================================================
``key``                bytes       sample key
``split``              bytes       one of ``SPLITS``
``embedding``          bytes       float32 little endian, row-major [frames, dim]
``embedding_shape``    int64[2]    [frames, dim]
``y_true``             float[20]   as above
``y_mask``             int64[20]   as above
``embedder``           bytes       embedder name, e.g. ``vggish`` or ``musicnn``
``embedder_version``   bytes       weights identity (handle, checkpoint or model name)
``augmentation_id``    int64       as above
``group``              bytes       as above
``partner_group``      bytes       as above
``schema_version``     int64       ``EMBEDDING_SCHEMA_VERSION``
=====================  ==========  ===================================================
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# --- Dataset -------------------------------------------------------------------------------

# Class-map order of the OpenMIC-2018 release (class-map.json). Index i of every y_true /
# y_mask vector and of every model output is CLASSES[i].
CLASSES: tuple[str, ...] = (
    "accordion",
    "banjo",
    "bass",
    "cello",
    "clarinet",
    "cymbals",
    "drums",
    "flute",
    "guitar",
    "mallet_percussion",
    "mandolin",
    "organ",
    "piano",
    "saxophone",
    "synthesizer",
    "trombone",
    "trumpet",
    "ukulele",
    "violin",
    "voice",
)
NUM_CLASSES: int = len(CLASSES)
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}

# A label counts as positive at or above this relevance (the release's own convention).
POSITIVE_THRESHOLD: float = 0.5

# Split names. "validation" is carved from the official train partition, grouped by artist.
SPLIT_TRAIN = "train"
SPLIT_VALIDATION = "validation"
SPLIT_TEST = "test"
SPLITS: tuple[str, ...] = (SPLIT_TRAIN, SPLIT_VALIDATION, SPLIT_TEST)
DEFAULT_VALIDATION_FRACTION: float = 0.15
OFFICIAL_PARTITION = "split01"

# Release file layout, relative to the extracted ``openmic-2018/`` directory.
RELEASE_TARBALL_NAME = "openmic-2018-v1.0.0.tgz"
RELEASE_ROOT_NAME = "openmic-2018"
AGGREGATED_LABELS_FILE = "openmic-2018-aggregated-labels.csv"
INDIVIDUAL_RESPONSES_FILE = "openmic-2018-individual-responses.csv"
METADATA_FILE = "openmic-2018-metadata.csv"
CLASS_MAP_FILE = "class-map.json"
NPZ_FILE = "openmic-2018.npz"
PARTITIONS_DIR = "partitions"
PARTITION_TRAIN_FILE = f"{OFFICIAL_PARTITION}_train.csv"
PARTITION_TEST_FILE = f"{OFFICIAL_PARTITION}_test.csv"
AUDIO_DIR = "audio"
AUDIO_EXTENSION = ".ogg"
VGGISH_DIR = "vggish"
# The authors' md5 lists; `disco verify` looks for them in the dataset root when given none, and
# the demo dataset writes the audio one so it verifies like the release.
AUDIO_MD5_FILE = "checksums-audio.csv"
VGGISH_MD5_FILE = "checksums-vggish.csv"
# Clips live in audio/<key[:3]>/<key>.ogg (and vggish/<key[:3]>/<key>.json).
KEY_PREFIX_LENGTH = 3

# --- Audio ---------------------------------------------------------------------------------

SAMPLE_RATE: int = 16_000  # every embedder's input rate
CLIP_SECONDS: float = 10.0
CLIP_SAMPLES: int = int(SAMPLE_RATE * CLIP_SECONDS)
RELEASE_SAMPLE_RATE: int = 44_100  # the release's (and the demo dataset's) audio
RELEASE_CHANNELS: int = 2
PCM_DTYPE = "<i2"  # signed 16-bit little endian, as in the record schema
PCM_SCALE: float = 32768.0  # int16 -> float in [-1, 1), as VGGish's reference does
# A decoded clip shorter than this, or at a rate outside this range, is a dead letter, not a
# record: padded to CLIP_SECONDS it would be seconds of labelled silence. The real fixtures go
# down to 1 s clips; telephone audio is 8 kHz and studio masters reach 384 kHz.
MIN_CLIP_SECONDS: float = 0.5
MIN_SOURCE_SAMPLE_RATE: int = 4_000
MAX_SOURCE_SAMPLE_RATE: int = 384_000

# --- VGGish (published reference parameters) ------------------------------------------------

VGGISH_STFT_WINDOW_SECONDS: float = 0.025
VGGISH_STFT_HOP_SECONDS: float = 0.010
VGGISH_NUM_MEL_BINS: int = 64
VGGISH_MEL_MIN_HZ: float = 125.0
VGGISH_MEL_MAX_HZ: float = 7500.0
VGGISH_LOG_OFFSET: float = 0.01
VGGISH_EXAMPLE_WINDOW_SECONDS: float = 0.96
VGGISH_EXAMPLE_HOP_SECONDS: float = 0.96
VGGISH_NUM_FRAMES: int = 96  # frames of 10 ms in one 0.96 s example
VGGISH_EMBEDDING_SIZE: int = 128
VGGISH_DEFAULT_HANDLE = "https://tfhub.dev/google/vggish/1"
# AudioSet / OpenMIC post-processing: PCA, then clip to [min, max] and quantise to uint8.
QUANTIZE_MIN_VAL: float = -2.0
QUANTIZE_MAX_VAL: float = 2.0
RELEASE_VGGISH_FRAMES: int = 10

# --- Records -------------------------------------------------------------------------------

RESAMPLED_SCHEMA_VERSION: int = 1
EMBEDDING_SCHEMA_VERSION: int = 1

FEATURE_KEY = "key"
FEATURE_SPLIT = "split"
FEATURE_PCM = "pcm"
FEATURE_SAMPLE_RATE = "sample_rate"
FEATURE_NUM_SAMPLES = "num_samples"
FEATURE_ORIGINAL_DURATION = "original_duration"
FEATURE_AUGMENTATION_ID = "augmentation_id"
FEATURE_Y_TRUE = "y_true"
FEATURE_Y_MASK = "y_mask"
FEATURE_SCHEMA_VERSION = "schema_version"
FEATURE_EMBEDDING = "embedding"
FEATURE_EMBEDDING_SHAPE = "embedding_shape"
FEATURE_EMBEDDER = "embedder"
FEATURE_EMBEDDER_VERSION = "embedder_version"
FEATURE_GROUP = "group"
FEATURE_PARTNER_GROUP = "partner_group"

# resample's decoders with --pool auto on the local runner: threads up to this many decoders, processes
# beyond. libsndfile (memfd) and soxr release the GIL for most of a clip, so on 2 cores threads beat
# processes, which pay for handing each ~320 kB record back (make bench-resample); what stays under the
# GIL limits threads as cores are added, which 2 cores cannot measure, so processes keep the rest.
THREAD_DECODERS_MAX: int = 2

# Shard file names: <prefix>-SSSSS-of-NNNNN.tfrecord (Beam's default shard template).
RESAMPLED_PREFIX = "audio"
EMBEDDING_PREFIX = "embeddings"
TFRECORD_SUFFIX = ".tfrecord"
FAILURES_FILE = "failures.jsonl"  # dead-letter output: one JSON object per failed clip
SUMMARY_FILE = "summary.json"  # every step's machine-readable summary
RUN_INFO_FILE = "run_info.json"  # parameters, seed and versions beside every output
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
# Written last into every step output: its shards with record counts and checksums, the step and a
# digest of its parameters. Readers take the shard list from it (disco.publish).
MANIFEST_FILE = "manifest.json"
# The object disco.remote writes (and deletes) under a gs:// output to check it is writable; one
# whose delete failed is no output, and publishing does not count it.
WRITE_PROBE_NAME = ".disco-write-probe"
MANIFEST_VERSION: int = 1
# Listing a gs:// dataset (its fingerprint for cache keys): seconds per request, and in all for one
# page's retries. google-cloud-storage's default retries an unreachable endpoint for 120 s.
GCS_LIST_TIMEOUT_S: float = 30.0
GCS_LIST_DEADLINE_S: float = 20.0
# A step fails (exit non-zero, nothing published) when more than this fraction of its inputs
# failed; 1.0 fails only when every input failed. An empty output always fails.
DEFAULT_MAX_FAILURE_RATIO: float = 1.0

# --- Training presets -------------------------------------------------------------------------

# Model names `disco train --model` accepts. "auto" trains the candidates in AUTO_CANDIDATES and
# keeps the best (or their average) by out-of-fold mAP (disco.train.select).
MODELS: tuple[str, ...] = ("auto", "linear", "baseline", "attention")
NETWORKS: tuple[str, ...] = ("baseline", "attention")  # disco.train.models.build_model names
# The attention network's per-frame projection width.
ATTENTION_UNITS: int = 256
AUTO_CANDIDATES: tuple[str, ...] = ("linear", "attention")
# "auto" cross-fits over this many folds of train + validation, grouped by artist (else recording;
# the fold networks stopped together on their pooled out-of-fold mAP); TrainPreset.refits says what
# the network candidate is.
SELECTION_FOLDS: int = 5
# Training batches run per call into TensorFlow. The networks are small, so one Python round trip
# per batch (Keras' default) costs about as much as the batch. 32 per call trains the same weights,
# bit for bit; with network_scores it took the default's fit on the dev set from at most 5.2 to at
# most 4.3 minutes on a slow 2-core host (bench/bench_quality.py --only-default). The finite-loss
# check sees the running loss once per call instead of every batch.
STEPS_PER_EXECUTION: int = 32
# Held-out clips scored per direct call of a network (disco.train.train.network_scores).
SCORE_CHUNK: int = 4096


@dataclass(frozen=True)
class TrainPreset:
    """One named training recipe; explicit CLI flags / pipeline parameters override its fields."""

    model: str
    learning_rate: float
    l2: float
    dropout: float
    batch_size: int
    patience: int
    epochs: int
    mixup_alpha: float  # mixup on the embeddings (lam ~ Beta(alpha, alpha)); 0 = off
    ensemble: int  # networks averaged (with "auto": per fold) trained with seeds seed, seed+1, ...
    # "auto" only: networks refitted on all of train + validation for the epoch count chosen on the
    # fold networks' pooled out-of-fold mAP, averaged into the network candidate; 0 = the fold
    # networks themselves are averaged.
    refits: int
    description: str


_MEASURED = TrainPreset(
    model="auto",
    learning_rate=1e-3,
    l2=1e-4,
    dropout=0.3,
    batch_size=64,
    patience=10,
    epochs=100,
    mixup_alpha=0.0,
    ensemble=1,
    refits=5,
    description="candidates chosen by cross-fitting (measured default)",
)
PRESETS: dict[str, TrainPreset] = {
    # Measured on audioset-music20-dev (make bench-quality; docs/train-evaluate.md).
    "default": _MEASURED,
    # The earlier project's dense settings, kept for comparison.
    "seed": replace(
        _MEASURED,
        refits=0,
        model="baseline",
        learning_rate=1e-4,
        l2=1e-2,
        dropout=0.5,
        description="earlier project's dense settings",
    ),
    # What `make demo` trained before the measured default (one attention model).
    "demo": replace(
        _MEASURED,
        refits=0,
        model="attention",
        description="attention model at the demo's settings",
    ),
}
DEFAULT_PRESET = "default"
_DEFAULT = PRESETS[DEFAULT_PRESET]
DEFAULT_MODEL: str = _DEFAULT.model
DEFAULT_DROPOUT: float = _DEFAULT.dropout
DEFAULT_L2: float = _DEFAULT.l2
DEFAULT_SEED: int = 2018
# A pipeline hyperparameter (model, epochs, learning rate, ...) at this value takes the chosen
# preset's own. KFP parameters cannot be left unset (kfp.local 2.17 does not run an optional one left
# unset), and a real value must be usable whatever it equals: no valid number field is negative and
# no model name is empty, so these mean nothing else.
FROM_PRESET: int = -1
FROM_PRESET_MODEL: str = ""


def from_preset(value) -> bool:
    """Whether a hyperparameter's value asks for the chosen preset's: None (the library's and
    ``disco train``'s unset) or a sentinel above (the pipeline's)."""
    if value is None:
        return True
    if isinstance(value, str):
        return value == FROM_PRESET_MODEL
    return not isinstance(value, bool) and value == FROM_PRESET


# --- Pipeline defaults ------------------------------------------------------------------------
DEFAULT_EMBEDDER = "musicnn"  # a name of disco.embedders.available_embedders()
# Clips per model call in the embed step. On CPU a call's activations grow with its clips and
# TensorFlow's allocator keeps what a call once used, so the step's peak memory follows this, not the
# number of clips (docs/embed.md, "Memory"). A GPU may want more (--batch-size).
EMBED_BATCH_SIZE: int = 8
DEFAULT_AUGMENT_COPIES: int = 1  # audiomentations copies per training clip in a pipeline run

# --- The release's precomputed features ---------------------------------------------------------
RELEASE_EMBEDDER = "vggish-release"  # embedder name on records made from openmic-2018.npz / vggish/*.json
RELEASE_RECORDS_PER_SHARD = 2000

# --- musicnn (MTT_musicnn, as the `musicnn` package's graph builds it) ------------------------

MUSICNN_MODEL = "MTT_musicnn"  # the checkpoint directory inside the `musicnn` wheel
MUSICNN_FFT_SIZE: int = 512
MUSICNN_HOP: int = 256
MUSICNN_NUM_MELS: int = 96
MUSICNN_PATCH_SECONDS: float = 3.0  # the network's input: one patch of 187 frames
MUSICNN_LOG_SCALE: float = 10000.0  # log10(1 + 10000 * mel), the original's compression
MUSICNN_NUM_TAGS: int = 50  # the MagnaTagATune tags the model was trained on
MUSICNN_BN_EPSILON: float = 1e-3  # tf.compat.v1.layers.batch_normalization's default
# max_pool: general spectro-temporal detectors, before the dense layers that specialise on the
# tags (see disco.embedders.musicnn).
MUSICNN_DEFAULT_LAYER = "max_pool"

# --- Demo dataset ------------------------------------------------------------------------------

DEMO_CLIPS: int = (
    200  # what `make demo` generates (the Makefile's DEMO_CLIPS mirrors it; a test keeps them equal)
)

# --- Pipeline, images and clusters --------------------------------------------------------------

# The KFP pipeline's name (pipelineInfo.name in the compiled YAML, which is named after it, and the
# default display name of a Vertex run). The golden-YAML test pins it: clusters know the pipeline by it.
PIPELINE_NAME = "disco-openmic"
# Relative to the repository root; the Makefile's PIPELINE_YAML mirrors it (a test keeps them equal).
PIPELINE_YAML = f"pipelines/{PIPELINE_NAME}.yaml"
PIPELINE_LOG_FILE = "pipeline.log"  # `disco run`'s full log, beside metrics.json and report.html
# Set by the local runner for the step subprocesses: each step writes its progress, result and error
# there as JSON lines (disco.stepevents), so the runner reads them from files, not from the log text.
STEP_EVENTS_ENV = "DISCO_STEP_EVENTS_DIR"
RUN_SUMMARY_FILE = "run_summary.json"  # `disco run`'s parameters, timing and headline metrics
PIPELINE_ROOT_DIR = "pipeline_root"  # kfp.local's artifacts, under a run directory
# kfp.local's task cache, shared by the runs under one parent directory; `disco analyse` skips it.
CACHE_DIR_NAME = ".kfp-cache"
# Image name prefix for `make build-images`, the compiled pipeline's default images and kind's smoke
# test; kind loads local images by name, so no registry has to exist. The Makefile's REGISTRY mirrors it.
DEFAULT_REGISTRY = "localhost/disco"
# One name serves both places a GPU is asked for: Dataflow's worker_accelerator type and GKE's
# cloud.google.com/gke-accelerator label value (k8s/gke/create-gpu-pool.sh's default pool, which a
# test keeps equal), so a Dataflow embed and a GKE pipeline run on the same kind of GPU by default.
DEFAULT_GPU_TYPE = "nvidia-tesla-t4"
# Where a compiled pipeline runs (`disco compile --target`): open-source KFP on Kubernetes (GPU as
# the `nvidia.com/gpu` resource plus a GKE node selector and toleration) or Vertex AI Pipelines
# (its own accelerator names; machine picked from CPU and memory *limits*; no Kubernetes spec).
COMPILE_TARGETS = ("kfp", "vertex")
DEFAULT_COMPILE_TARGET = "kfp"
# The compiled YAML of a target other than the default is `pipelines/<name>-<target>.yaml`.
PIPELINE_YAML_VERTEX = f"pipelines/{PIPELINE_NAME}-vertex.yaml"
# GKE accelerator label values (what --gpu-accelerator and Dataflow take) -> Vertex AI's
# AcceleratorType names, so one --gpu-accelerator serves both targets.
VERTEX_ACCELERATORS = {
    "nvidia-tesla-t4": "NVIDIA_TESLA_T4",
    "nvidia-l4": "NVIDIA_L4",
    "nvidia-tesla-p4": "NVIDIA_TESLA_P4",
    "nvidia-tesla-p100": "NVIDIA_TESLA_P100",
    "nvidia-tesla-v100": "NVIDIA_TESLA_V100",
    "nvidia-tesla-a100": "NVIDIA_TESLA_A100",
    "nvidia-a100-80gb": "NVIDIA_A100_80GB",
    "nvidia-h100-80gb": "NVIDIA_H100_80GB",
}
# The pooled confusion matrix's categories (rows truth, columns decision) in the KFP UI.
CONFUSION_CATEGORIES = ("absent", "present")
# Kubernetes version the shipped manifests are validated against (kubernetes-validate's schemas):
# kind's default node image when the manifests were written.
K8S_VERSION = "1.32.0"

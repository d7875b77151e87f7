"""What a model needs to predict from raw inputs, kept beside its weights as settings.json.

The settings hold how to rebuild the network (as models/run.json records it), the
training's standardisation statistics (from the prepared data's meta.json), and what the
raw inputs are: a table's feature columns, with the categories of each one-hot encoded
column in the order the prepare stage encoded them, or arrays shaped as the training
inputs; for image data, the value an 8-bit pixel's 255 stands for.
"""

from pathlib import Path

from dlpipe.errors import DataError
from dlpipe.paths import PREPARED_DIR
from dlpipe.record import RunRecord
from dlpipe.serving import text

# The source whose data has a table's named feature columns.
_TABLE = "dlpipe.data.tables.table"


def describe(record: RunRecord, meta: dict) -> dict:
    """The serving settings of the model that `record` (models/run.json) describes.

    Args:
        record: the training's run record.
        meta: the prepared data's meta.json, which must be the data the model was trained on.

    Raises:
        DataError: the prepared data is not the training's, or a table's file changed since.
    """
    if meta["hash"] != record.data_hash:
        raise DataError(
            f"the prepared data (data/prepared/meta.json) is not the data run "
            f"{record.run_id} was trained on: serve the model by its run id or a "
            "models:/ URI, whose statistics travel with it, or prepare that data again"
        )
    return {
        **record.serving(),
        "stats": meta["stats"],
        "columns": table_columns(meta) if meta["data"].get("_target_") == _TABLE else None,
        # What one pixel at full intensity was in the training data, for image inputs.
        "pixel_range": meta.get("pixel_range"),
        "targets": _targets(meta),
        # Sequences that may end in all-NaN steps, and whether each is z-normalised alone.
        "padded": meta.get("padded", False),
        "series_normalised": meta["data"].get("normalise") == "series",
        # Text: the tokeniser and what a text's tokens are cut to.
        "text": text.settings_of(meta, PREPARED_DIR) if meta.get("text") else None,
    }


def table_columns(meta: dict) -> list[dict]:
    """The training table's feature columns in order, each with its categories when it is
    one-hot encoded: as meta.json lists them (a table prepared in shards), else read again
    from the training file and checked against what the prepare stage made of it."""
    from dlpipe.data import tables

    if "columns" in meta:
        return meta["columns"]
    data = meta["data"]
    path = Path(data["path"])
    frame = tables.read_frame(path)
    targets = data["target"] if isinstance(data["target"], list) else [data["target"]]
    # A split column (data.split.column) says where a row was used, not what it holds.
    split_column = (data.get("split") or {}).get("column")
    listed = data.get("categorical") or []
    columns = []
    for name in frame.columns.drop([*targets, *([split_column] if split_column else [])]):
        categorical = tables.is_categorical(frame[name], listed)
        categories = sorted(set(frame[name].astype(str))) if categorical else None
        columns.append({"name": str(name), "categories": categories})
    width = sum(len(column["categories"] or [None]) for column in columns)
    if width != meta["input_shape"][0]:
        raise DataError(
            f"data file {path} changed since the prepare stage read it ({width} features now, "
            f"{meta['input_shape'][0]} then): rerun the prepare stage and the training"
        )
    return columns


def _targets(meta: dict) -> list[str] | None:
    """A regression table's target column, which names the predicted values."""
    target = meta["data"].get("target")
    return [target] if meta["task"] == "regression" and isinstance(target, str) else None

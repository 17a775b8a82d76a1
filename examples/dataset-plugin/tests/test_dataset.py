"""Run alplug's conformance check on the data source, as every data-source plugin's own suite should."""
import numpy as np
from PIL import Image

from alplug.testing import check_dataset

from alplug_example_dataset import IMAGE_LIST


def test_imagelist_follows_the_data_source_contract(tmp_path):
    lines = ["path,label"]
    for i in range(12):
        Image.fromarray(np.full((20, 24), 20 * i, np.uint8)).save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png,{'cat' if i % 2 else 'dog'}")
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    check_dataset(IMAGE_LIST, str(tmp_path / "list.csv"))

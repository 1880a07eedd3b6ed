"""A reader that stops early (``ncnnc inspect ... | head``) ends the command quietly: no traceback."""

from __future__ import annotations

import subprocess
import sys


def test_inspect_into_a_closed_pipe_exits_quietly(tmp_path):
    lines = ["7767517", "2001 2001", "Input data 0 1 data 0=8 1=8 2=4"]
    previous = "data"
    for i in range(2000):  # far more output than a pipe buffers
        lines.append(f"ReLU relu_with_a_long_name_{i} 1 1 {previous} blob_with_a_long_name_{i}")
        previous = f"blob_with_a_long_name_{i}"
    param = tmp_path / "long.param"
    param.write_text("\n".join(lines) + "\n")
    command = [sys.executable, "-m", "ncnnc", "inspect", str(param)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        first = proc.stdout.readline()
        proc.stdout.close()  # what `head -1` does after its line
        err = proc.stderr.read().decode()
        status = proc.wait()
    assert first.startswith(b"type")
    assert status == 0 and "Traceback" not in err and "BrokenPipe" not in err, err

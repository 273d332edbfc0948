"""`make bench`: speed and memory goals, each figure beside a baseline measured in the same run."""

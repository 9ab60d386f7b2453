"""Running a recipe: processes, ranks and launching (more modules join as the run is split into stages)."""

"""RT Structure Sets: contours <-> voxels, read and write."""

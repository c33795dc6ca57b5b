"""What a stack costs a month: the hours its schedule runs, a dated price file, and the lines they make."""

"""What people look at: offscreen mesh renders and the self-contained HTML report."""

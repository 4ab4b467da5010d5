"""`spiral serve`: a local web page that runs the loop and shows each plan, clip and critique as it
happens. Each run is an ordinary `spiral run` subprocess; the page's events are the lines of the
journal it writes (see spiral.journal), so a past run opens from its folder as it looked live."""

"""Hardware-in-the-loop: the vehicle simulator, fleets, and replay into real agents."""

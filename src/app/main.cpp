// mira_hpc entry point.
int main() { return 0; }
